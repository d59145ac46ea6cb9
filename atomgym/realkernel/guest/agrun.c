/*
 * agrun: the guest side of `atomgym realkernel run` (PID 1's helper, static, no libc beyond syscalls).
 *
 *   agrun hold DEV                      keep DEV open forever (6.1 drops a block device's page cache
 *                                       when its last opener closes it)
 *   agrun run PLAN                      run the plan: workloads, shots, sysctl writes, sampler
 *
 * The plan is the host's compilation of the scenario (atomgym/realkernel/plan.py), one item a line:
 *   duration S | sample S | disk DEV | thp always|madvise|never
 *   prefill CACHE_MIB ANON_MIB OFFSET_MIB
 *   sysctl AT_S KEY VALUE
 *   stream ID START_S STOP_S RATE_MIB_S OFFSET_MIB WSS_MIB VOLUME_MIB     (STOP -1: end; VOLUME -1: loop)
 *   hog ID START_S STOP_S RATE_MIB_S PEAK_MIB HOLD_S PERIOD_S
 *   atomic ID START_S STOP_S GFP PAGES INTERVAL_US HOLD_US
 *   shot AT_S PAGES HOLD_US
 *   trace SYSTEM/EVENT | tracebuf KB    tracepoints recorded from t = 0 to the end (tracefs, clock mono)
 * Output on stdout (the serial console), each line tagged:
 *   @S T | @Z NID ZONE FREE BOOST MIN LOW HIGH MANAGED | @V KEY VAL ... | @M KEY VAL ...  (one sample)
 *   @K RUN_NS WAIT_NS SLICES   kswapd0's /proc/PID/schedstat (CPU time, runqueue wait, timeslices)
 *   @E T KIND ID|KEY [VALUE]   events (start/stop/sysctl/shot/exit)
 *   @SNAP NAME ... @ENDSNAP    a snapshot in the `tail -n +1` format
 *   @T LINE                    one line of the trace buffer (tracefs `trace`), after the run
 *   @DONE T | @ERR message
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024L * 1024L)
#define MAXW 32
#define MAXEV 256
#define CHUNK (256 * 1024)

static double t0;

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double now_s(void) { return mono() - t0; }

static void sleep_s(double s)
{
	struct timespec ts;
	if (s <= 0)
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void die(const char *msg)
{
	printf("@ERR %s: %s\n", msg, strerror(errno));
	fflush(stdout);
	_exit(2);
}

static int write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;
	if (fd < 0)
		return -1;
	n = write(fd, val, strlen(val));
	close(fd);
	return n == (ssize_t)strlen(val) ? 0 : -1;
}

static ssize_t read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n, tot = 0;
	if (fd < 0)
		return -1;
	while (tot < (ssize_t)cap - 1 && (n = read(fd, buf + tot, cap - 1 - tot)) > 0)
		tot += n;
	close(fd);
	buf[tot] = 0;
	return tot;
}

/* ---- workloads (each a child process) ---------------------------------------------------- */
static void stream_run(const char *dev, double rate, long off_mib, long wss_mib, double vol_mib)
{
	int fd = open(dev, O_RDONLY);
	char *buf = malloc(CHUNK);
	double start = mono(), done = 0, total = vol_mib > 0 ? vol_mib * MIB : -1;
	long pos = 0, wss = wss_mib * MIB;
	if (fd < 0 || !buf)
		die("stream: open");
	for (;;) {
		ssize_t n;
		if (total >= 0 && done >= total)
			break;
		if (pos >= wss)
			pos = 0;
		n = pread(fd, buf, CHUNK, off_mib * MIB + pos);
		if (n <= 0)
			die("stream: read");
		pos += n;
		done += n;
		if (rate > 0) {
			double ahead = start + done / (rate * MIB) - mono();
			if (ahead > 0)
				sleep_s(ahead);
		}
	}
	_exit(0);
}

static void hog_run(double rate, long peak_mib, double hold, double period)
{
	long page = sysconf(_SC_PAGESIZE);
	for (;;) {
		double cyc = mono(), start;
		long size = peak_mib * MIB, i;
		char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			die("hog: mmap");
		madvise(p, size, MADV_NOHUGEPAGE);   /* order-0 faults, like the simulator's hog */
		start = mono();
		for (i = 0; i < size; i += page) {
			p[i] = 1;
			if (rate > 0 && (i & (64 * page - 1)) == 0) {
				double ahead = start + (double)i / (rate * MIB) - mono();
				if (ahead > 0)
					sleep_s(ahead);
			}
		}
		sleep_s(hold);
		munmap(p, size);
		if (period <= 0)
			break;
		sleep_s(cyc + period - mono());
	}
	_exit(0);
}

/* ---- sampler --------------------------------------------------------------------------- */
static const char *VM_KEYS[] = {
	"nr_free_pages", "nr_file_pages", "nr_anon_pages", "nr_inactive_file", "nr_active_file",
	"nr_slab_reclaimable", "nr_slab_unreclaimable", "pgpgin", "pgalloc_dma", "pgalloc_dma32",
	"pgalloc_normal", "pgscan_kswapd", "pgscan_direct", "pgsteal_kswapd", "pgsteal_direct",
	"allocstall_dma", "allocstall_dma32", "allocstall_normal", "allocstall_movable", "pageoutrun",
	"kswapd_low_wmark_hit_quickly", "kswapd_high_wmark_hit_quickly", "compact_stall", "oom_kill",
	"workingset_refault_file", NULL};

static char big[1 << 17];

/* kswapd0's PID (a kernel thread started at boot): its /proc/PID/schedstat gives the CPU time it
 * ran, the time it waited on a runqueue and its timeslices, in ns (CONFIG_SCHED_INFO) */
static char kswapd_stat[64];

static void find_kswapd(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	char path[64], comm[32];
	if (!d)
		return;
	while ((e = readdir(d))) {
		int fd;
		ssize_t n;
		if (e->d_name[0] < '1' || e->d_name[0] > '9' || strlen(e->d_name) > 16)
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		n = read(fd, comm, sizeof(comm) - 1);
		close(fd);
		if (n <= 0)
			continue;
		comm[n] = 0;
		comm[strcspn(comm, "\n")] = 0;
		if (!strcmp(comm, "kswapd0")) {
			snprintf(kswapd_stat, sizeof(kswapd_stat), "/proc/%s/schedstat", e->d_name);
			break;
		}
	}
	closedir(d);
}

static void sample(void)
{
	char *line, *save;
	int i;
	printf("@S %.4f\n", now_s());
	if (read_file("/proc/zoneinfo", big, sizeof(big)) > 0) {
		int nid = -1;
		char zone[32] = "";
		long v[6] = {0};   /* free boost min low high managed */
		int have = 0;
		for (line = strtok_r(big, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			char key[32];
			long val;
			int n2;
			char zn[32];
			if (sscanf(line, "Node %d, zone %31s", &n2, zn) == 2) {
				if (have)
					printf("@Z %d %s %ld %ld %ld %ld %ld %ld\n", nid, zone, v[0], v[1], v[2], v[3], v[4], v[5]);
				nid = n2;
				strcpy(zone, zn);
				memset(v, 0, sizeof(v));
				have = 1;
				continue;
			}
			if (sscanf(line, " pages free %ld", &val) == 1) { v[0] = val; continue; }
			if (sscanf(line, " %31s %ld", key, &val) == 2) {
				if (!strcmp(key, "boost")) v[1] = val;
				else if (!strcmp(key, "min")) v[2] = val;
				else if (!strcmp(key, "low")) v[3] = val;
				else if (!strcmp(key, "high")) v[4] = val;
				else if (!strcmp(key, "managed")) v[5] = val;
			}
		}
		if (have)
			printf("@Z %d %s %ld %ld %ld %ld %ld %ld\n", nid, zone, v[0], v[1], v[2], v[3], v[4], v[5]);
	}
	if (read_file("/proc/vmstat", big, sizeof(big)) > 0) {
		printf("@V");
		for (line = strtok_r(big, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			char key[64];
			long long val;
			if (sscanf(line, "%63s %lld", key, &val) != 2)
				continue;
			for (i = 0; VM_KEYS[i]; i++)
				if (!strcmp(key, VM_KEYS[i])) {
					printf(" %s %lld", key, val);
					break;
				}
		}
		printf("\n");
	}
	/* /proc/pagetypeinfo: free chunks per migratetype and order (the zone's fragmentation), then
	 * the pageblocks of each type: "@P NID ZONE TYPE N0..N10", "@PH TYPE..." (the block table's
	 * header: the config decides the types) and "@PB NID ZONE COUNT..." (a count the kernel caps
	 * prints as ">100000": printed as 100000) */
	if (read_file("/proc/pagetypeinfo", big, sizeof(big)) > 0) {
		for (line = strtok_r(big, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			int nid, n = 0;
			char zn[32], ty[32];
			char *p;
			if (!strncmp(line, "Number of blocks type", 21)) {
				printf("@PH");
				for (p = strtok(line + 21, " "); p; p = strtok(NULL, " "))
					printf(" %s", p);
				printf("\n");
				continue;
			}
			if (strncmp(line, "Node", 4))
				continue;
			if (sscanf(line, "Node %d, zone %31s type %31s%n", &nid, zn, ty, &n) == 3 && n > 0) {
				zn[strcspn(zn, ",")] = 0;
				printf("@P %d %s %s", nid, zn, ty);
			} else if (sscanf(line, "Node %d, zone %31s%n", &nid, zn, &n) == 2 && n > 0) {
				zn[strcspn(zn, ",")] = 0;
				printf("@PB %d %s", nid, zn);
			} else
				continue;
			for (p = line + n; *p;) {
				char *end;
				long v;
				while (*p == ' ' || *p == '>')
					p++;
				if (!*p)
					break;
				v = strtol(p, &end, 10);
				if (end == p)
					break;
				printf(" %ld", v);
				p = end;
			}
			printf("\n");
		}
	}
	if (kswapd_stat[0] && read_file(kswapd_stat, big, sizeof(big)) > 0) {
		unsigned long long run, wait, slices;
		if (sscanf(big, "%llu %llu %llu", &run, &wait, &slices) == 3)
			printf("@K %llu %llu %llu\n", run, wait, slices);
	}
	if (read_file("/proc/atomgym_atomic", big, sizeof(big)) > 0) {
		printf("@M");
		for (line = strtok_r(big, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			char *sp = strchr(line, ' '), *tok, *save2;
			if (!sp)
				continue;
			if (!strchr(sp + 1, ' ') && !strchr(sp + 1, ':')) {
				printf(" %s", line);
				continue;
			}
			/* "KEY NID:ZID:FREE ..." (zones' free pages at a failure) -> " KEY_ZID FREE" for node 0 */
			*sp = 0;
			for (tok = strtok_r(sp + 1, " ", &save2); tok; tok = strtok_r(NULL, " ", &save2)) {
				int nid, zid;
				long fr;
				if (sscanf(tok, "%d:%d:%ld", &nid, &zid, &fr) == 3 && nid == 0)
					printf(" %s_%d %ld", line, zid, fr);
			}
		}
		printf("\n");
	}
	fflush(stdout);
}

static void snapshot(const char *name)
{
	static const char *files[] = {"/proc/sys/kernel/osrelease", "/proc/zoneinfo", "/proc/sys/vm/min_free_kbytes",
		"/proc/sys/vm/watermark_scale_factor", "/proc/sys/vm/watermark_boost_factor",
		"/proc/sys/vm/lowmem_reserve_ratio", "/sys/kernel/mm/transparent_hugepage/enabled", "/proc/vmstat",
		"/proc/meminfo", NULL};
	int i;
	printf("@SNAP %s %.4f\n", name, now_s());
	for (i = 0; files[i]; i++) {
		ssize_t n = read_file(files[i], big, sizeof(big));
		if (n < 0)
			continue;
		printf("%s==> %s <==\n%s", i ? "\n" : "", files[i], big);
		if (n > 0 && big[n - 1] != '\n')
			printf("\n");
	}
	printf("@ENDSNAP\n");
	fflush(stdout);
}

/* ---- plan ------------------------------------------------------------------------------ */
struct work {
	char kind[8];
	int id;
	double start, stop;
	double a[6];
	pid_t pid;
	int state;   /* 0 pending, 1 running, 2 done */
};
struct ev { double at; int kind; char key[64]; long long v1, v2; };   /* kind 0 sysctl, 1 shot */

static struct work W[MAXW];
static int nw;
static struct ev E[MAXEV];
static int ne;
static double duration = 10, interval = 0.3;
static char dev[64] = "/dev/vda";
static double prefill_cache, prefill_anon, prefill_off;
static char thp[16];
#define MAXTRACE 16
#define TRACEFS "/sys/kernel/tracing"
static char trace_ev[MAXTRACE][96];
static int ntrace;
static long tracebuf_kb = 2048;

static void load_plan(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[512];
	if (!f)
		die("plan: open");
	while (fgets(line, sizeof(line), f)) {
		struct work *w = &W[nw];
		struct ev *e = &E[ne];
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "duration %lf", &duration) == 1 || sscanf(line, "sample %lf", &interval) == 1 ||
		    sscanf(line, "disk %63s", dev) == 1 || sscanf(line, "thp %15s", thp) == 1)
			continue;
		if (sscanf(line, "prefill %lf %lf %lf", &prefill_cache, &prefill_anon, &prefill_off) == 3)
			continue;
		if (sscanf(line, "tracebuf %ld", &tracebuf_kb) == 1)
			continue;
		if (ntrace < MAXTRACE && sscanf(line, "trace %95s", trace_ev[ntrace]) == 1) {
			ntrace++; continue;
		}
		if (ne < MAXEV && sscanf(line, "sysctl %lf %63s %lld", &e->at, e->key, &e->v1) == 3) {
			e->kind = 0; ne++; continue;
		}
		if (ne < MAXEV && sscanf(line, "shot %lf %lld %lld", &e->at, &e->v1, &e->v2) == 3) {
			e->kind = 1; ne++; continue;
		}
		if (nw < MAXW && sscanf(line, "%7s %d %lf %lf %lf %lf %lf %lf %lf %lf", w->kind, &w->id, &w->start, &w->stop,
					&w->a[0], &w->a[1], &w->a[2], &w->a[3], &w->a[4], &w->a[5]) >= 8) {
			nw++; continue;
		}
		printf("@ERR plan: cannot read line: %s", line);
		exit(2);
	}
	fclose(f);
}

static const char *sysctl_path(const char *key)
{
	static char p[128];
	snprintf(p, sizeof(p), "/proc/sys/vm/%s", key);
	return p;
}

static void start_work(struct work *w)
{
	char cmd[128];
	w->state = 1;
	printf("@E %.4f start %d %s\n", now_s(), w->id, w->kind);
	if (!strcmp(w->kind, "atomic")) {
		snprintf(cmd, sizeof(cmd), "config %d %lld %lld %lld", (int)w->a[0], (long long)w->a[1],
			 (long long)w->a[2], (long long)w->a[3]);
		if (write_file("/proc/atomgym_atomic", cmd) || write_file("/proc/atomgym_atomic", "start"))
			die("atomic: /proc/atomgym_atomic");
		return;
	}
	fflush(stdout);
	w->pid = fork();
	if (w->pid < 0)
		die("fork");
	if (w->pid == 0) {
		if (!strcmp(w->kind, "stream"))
			stream_run(dev, w->a[0], (long)w->a[1], (long)w->a[2], w->a[3]);
		hog_run(w->a[0], (long)w->a[1], w->a[2], w->a[3]);
	}
}

static void stop_work(struct work *w)
{
	printf("@E %.4f stop %d %s\n", now_s(), w->id, w->kind);
	w->state = 2;
	if (!strcmp(w->kind, "atomic")) {
		write_file("/proc/atomgym_atomic", "stop");
		return;
	}
	if (w->pid > 0) {
		kill(w->pid, SIGKILL);
		waitpid(w->pid, NULL, 0);
	}
}

/* The tracepoints: buffer and events set before the prefill (the buffer's pages are taken before
 * t = 0), recording switched on at t = 0 and off at the end, then the buffer printed. */
static void trace_setup(void)
{
	char p[256], v[32];
	int i;
	snprintf(v, sizeof(v), "%ld", tracebuf_kb);
	if (write_file(TRACEFS "/tracing_on", "0") || write_file(TRACEFS "/trace_clock", "mono") ||
	    write_file(TRACEFS "/buffer_size_kb", v) || write_file(TRACEFS "/trace", ""))
		die("trace: " TRACEFS);
	for (i = 0; i < ntrace; i++) {
		snprintf(p, sizeof(p), TRACEFS "/events/%.95s/enable", trace_ev[i]);
		if (write_file(p, "1"))
			die(p);
	}
}

static void trace_dump(void)
{
	FILE *f;
	char line[1024];
	write_file(TRACEFS "/tracing_on", "0");
	f = fopen(TRACEFS "/trace", "r");
	if (!f)
		die("trace: read");
	while (fgets(line, sizeof(line), f))
		if (line[0] != '#')
			printf("@T %s", line);
	fclose(f);
}

static void run(const char *plan)
{
	double next_sample = 0;
	int i;
	load_plan(plan);
	t0 = mono();
	if (thp[0] && write_file("/sys/kernel/mm/transparent_hugepage/enabled", thp))
		die("thp");
	/* sysctls at time 0 come first (the scenario's initial settings), then the prefill */
	for (i = 0; i < ne; i++)
		if (E[i].kind == 0 && E[i].at <= 0) {
			char v[32];
			snprintf(v, sizeof(v), "%lld", E[i].v1);
			if (write_file(sysctl_path(E[i].key), v))
				die(E[i].key);
			E[i].at = -1e9;
			printf("@E %.4f sysctl %s %lld\n", 0.0, E[i].key, E[i].v1);
		}
	if (ntrace)
		trace_setup();
	fflush(stdout);   /* a child must not inherit (and print again) buffered output */
	if (prefill_cache > 0) {   /* the page cache the scenario starts with: read once, kept */
		pid_t p = fork();
		if (p == 0)
			stream_run(dev, 0, (long)prefill_off, (long)prefill_cache, prefill_cache);
		waitpid(p, NULL, 0);
	}
	if (prefill_anon > 0) {    /* the anonymous memory it starts with: held to the end */
		pid_t p = fork();
		if (p == 0)
			hog_run(0, (long)prefill_anon, 1e9, 0);
		sleep_s(0.05);
		while (1) {   /* wait until it is faulted in (RSS reaches the size) */
			char path[64];
			long rss = 0, sz;
			snprintf(path, sizeof(path), "/proc/%d/statm", p);
			if (read_file(path, big, 256) > 0 && sscanf(big, "%ld %ld", &sz, &rss) == 2 &&
			    rss * 4096.0 >= prefill_anon * MIB * 0.99)
				break;
			sleep_s(0.05);
		}
	}
	snapshot("start");
	find_kswapd();
	t0 = mono();
	if (ntrace && write_file(TRACEFS "/tracing_on", "1"))
		die("trace: tracing_on");
	printf("@E 0.0000 begin %.1f %.6f\n", duration, t0);   /* t0: CLOCK_MONOTONIC = ktime_get() */
	fflush(stdout);
	for (;;) {
		double t = now_s();
		int st;
		pid_t p;
		while ((p = waitpid(-1, &st, WNOHANG)) > 0)
			for (i = 0; i < nw; i++)
				if (W[i].pid == p && W[i].state == 1) {
					W[i].state = 2;
					printf("@E %.4f exit %d %s\n", t, W[i].id, W[i].kind);
				}
		for (i = 0; i < ne; i++) {
			if (E[i].at < 0 || E[i].at > t)
				continue;
			if (E[i].kind == 0) {
				char v[32];
				snprintf(v, sizeof(v), "%lld", E[i].v1);
				if (write_file(sysctl_path(E[i].key), v))
					die(E[i].key);
				printf("@E %.4f sysctl %s %lld\n", t, E[i].key, E[i].v1);
			} else {
				char cmd[64];
				snprintf(cmd, sizeof(cmd), "shot %lld %lld", E[i].v1, E[i].v2);
				if (write_file("/proc/atomgym_atomic", cmd))
					die("shot");
				printf("@E %.4f shot %lld %lld\n", t, E[i].v1, E[i].v2);
			}
			E[i].at = -1e9;
		}
		for (i = 0; i < nw; i++) {
			if (W[i].state == 0 && W[i].start <= t && (W[i].stop < 0 || W[i].stop > t))
				start_work(&W[i]);
			if (W[i].state == 1 && W[i].stop >= 0 && W[i].stop <= t)
				stop_work(&W[i]);
		}
		if (t >= next_sample) {
			sample();
			next_sample += interval;
			if (next_sample < t)
				next_sample = t + interval;
		}
		if (t >= duration)
			break;
		sleep_s(0.005);
	}
	for (i = 0; i < nw; i++)
		if (W[i].state == 1)
			stop_work(&W[i]);
	sample();
	sleep_s(0.05);   /* held atomic pages of the last burst are freed by the module's timer */
	snapshot("final");
	if (read_file("/proc/atomgym_atomic", big, sizeof(big)) > 0) {
		char *line, *save;
		for (line = strtok_r(big, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			printf("@A %s\n", line);
	}
	if (ntrace)
		trace_dump();
	printf("@DONE %.4f\n", now_s());
	fflush(stdout);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	if (argc == 3 && !strcmp(argv[1], "hold")) {
		int fd = open(argv[2], O_RDONLY);
		if (fd < 0)
			die("hold: open");
		for (;;)
			pause();
	}
	if (argc == 3 && !strcmp(argv[1], "run")) {
		run(argv[2]);
		return 0;
	}
	fprintf(stderr, "usage: agrun hold DEV | agrun run PLAN\n");
	return 2;
}
