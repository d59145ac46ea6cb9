// SPDX-License-Identifier: GPL-2.0
/*
 * atomgym_atomic: the simulator's atomic_alloc workload on a real kernel.
 *
 * A soft hrtimer (softirq context, like a NIC's RX refill) ticks every millisecond. Every
 * interval_ms it makes one burst of pages_per_burst order-0 allocations, one by one like
 * alloc_page() in a loop, with GFP_ATOMIC|__GFP_NOWARN (gfp=atomic) or GFP_NOWAIT|__GFP_NOWARN
 * (gfp=nowait); a burst's pages are held hold_ms, then freed. One-off shots are written to
 * /proc/atomgym_atomic ("shot PAGES HOLD_MS"). Every failed page is counted; at the first
 * failure of a burst the free pages of every populated zone are recorded (the first such
 * burst and the latest one are kept).
 *
 * Control (write to /proc/atomgym_atomic, one command per write):
 *   config GFP PAGES_PER_BURST INTERVAL_US HOLD_US   (GFP: 0 = atomic, 1 = nowait; interval 0 = shots only)
 *   start | stop
 *   shot PAGES HOLD_US
 * Read: "key value" lines (counters, then the zones' free pages at the first/last failure).
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/hrtimer.h>
#include <linux/ktime.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/vmstat.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/nodemask.h>

#define AG_MAX_ZONES (MAX_NUMNODES * MAX_NR_ZONES)
#define AG_MAX_SHOTS 64
#define AG_REPORT_ZONES 16

struct ag_burst {
	struct list_head node;
	struct list_head pages;   /* chained through page->lru */
	ktime_t release;
	long n;
};

struct ag_zone_free {
	int nid;
	int zid;
	long free;
};

static DEFINE_SPINLOCK(ag_lock);
static LIST_HEAD(ag_held);
static struct hrtimer ag_timer;
static bool ag_running;
static gfp_t ag_gfp = GFP_ATOMIC | __GFP_NOWARN;
static int ag_gfp_class;                 /* 0 atomic, 1 nowait */
static long ag_pages_per_burst;
static s64 ag_interval_ns;
static s64 ag_hold_ns;
static ktime_t ag_next_burst;
static struct { long pages; s64 hold_ns; } ag_shots[AG_MAX_SHOTS];
static int ag_nshots;

/* counters */
static u64 ag_req, ag_got, ag_fail, ag_bursts, ag_fail_bursts, ag_held_pages, ag_shots_done, ag_held_max;
static s64 ag_first_fail_ns = -1, ag_last_fail_ns = -1;
static struct ag_zone_free ag_first_free[AG_REPORT_ZONES], ag_last_free[AG_REPORT_ZONES];
static int ag_nfirst, ag_nlast;

static int ag_read_zones(struct ag_zone_free *out)
{
	int nid, z, n = 0;

	for_each_online_node(nid) {
		pg_data_t *pgdat = NODE_DATA(nid);

		for (z = 0; z < MAX_NR_ZONES && n < AG_REPORT_ZONES; z++) {
			struct zone *zone = &pgdat->node_zones[z];

			if (!populated_zone(zone))
				continue;
			out[n].nid = nid;
			out[n].zid = z;
			out[n].free = zone_page_state(zone, NR_FREE_PAGES);
			n++;
		}
	}
	return n;
}

/* Called with ag_lock held, in softirq context. */
static void ag_do_burst(long pages, s64 hold_ns, ktime_t now)
{
	struct ag_burst *b = kmalloc(sizeof(*b), GFP_ATOMIC | __GFP_NOWARN);
	bool failed = false;
	long i;

	ag_bursts++;
	if (!b) {   /* the bookkeeping itself failed: count the whole burst as failed */
		ag_req += pages;
		ag_fail += pages;
		ag_fail_bursts++;
		return;
	}
	INIT_LIST_HEAD(&b->pages);
	b->n = 0;
	b->release = ktime_add_ns(now, hold_ns);
	for (i = 0; i < pages; i++) {
		struct page *p = alloc_page(ag_gfp);

		ag_req++;
		if (p) {
			ag_got++;
			list_add(&p->lru, &b->pages);
			b->n++;
			continue;
		}
		ag_fail++;
		if (!failed) {
			failed = true;
			ag_fail_bursts++;
			ag_last_fail_ns = ktime_to_ns(now);
			ag_nlast = ag_read_zones(ag_last_free);
			if (ag_first_fail_ns < 0) {
				ag_first_fail_ns = ag_last_fail_ns;
				ag_nfirst = ag_nlast;
				memcpy(ag_first_free, ag_last_free, sizeof(ag_first_free));
			}
		}
	}
	ag_held_pages += b->n;
	if (ag_held_pages > ag_held_max)
		ag_held_max = ag_held_pages;
	list_add_tail(&b->node, &ag_held);
}

static void ag_free_burst(struct ag_burst *b)
{
	struct page *p, *tmp;

	list_for_each_entry_safe(p, tmp, &b->pages, lru) {
		list_del(&p->lru);
		__free_page(p);
	}
	ag_held_pages -= b->n;
	list_del(&b->node);
	kfree(b);
}

static enum hrtimer_restart ag_tick(struct hrtimer *t)
{
	ktime_t now = ktime_get();
	struct ag_burst *b, *tmp;
	unsigned long flags;
	int i;

	spin_lock_irqsave(&ag_lock, flags);
	list_for_each_entry_safe(b, tmp, &ag_held, node) {
		if (ktime_compare(b->release, now) <= 0)
			ag_free_burst(b);
	}
	for (i = 0; i < ag_nshots; i++) {
		ag_do_burst(ag_shots[i].pages, ag_shots[i].hold_ns, now);
		ag_shots_done++;
	}
	ag_nshots = 0;
	if (ag_running && ag_interval_ns > 0 && ag_pages_per_burst > 0) {
		/* a late timer makes one burst, not a catch-up storm */
		if (ktime_compare(now, ag_next_burst) >= 0) {
			ag_do_burst(ag_pages_per_burst, ag_hold_ns, now);
			ag_next_burst = ktime_add_ns(ag_next_burst, ag_interval_ns);
			if (ktime_compare(ag_next_burst, now) <= 0)
				ag_next_burst = ktime_add_ns(now, ag_interval_ns);
		}
	}
	spin_unlock_irqrestore(&ag_lock, flags);
	hrtimer_forward_now(t, ms_to_ktime(1));
	return HRTIMER_RESTART;
}

static void ag_print_zones(struct seq_file *m, const char *key, struct ag_zone_free *z, int n)
{
	int i;

	seq_printf(m, "%s", key);
	for (i = 0; i < n; i++)
		seq_printf(m, " %d:%d:%ld", z[i].nid, z[i].zid, z[i].free);
	seq_puts(m, "\n");
}

static int ag_show(struct seq_file *m, void *v)
{
	unsigned long flags;
	struct ag_zone_free first[AG_REPORT_ZONES], last[AG_REPORT_ZONES];
	u64 c[8];
	s64 ff, lf;
	int nf, nl;

	spin_lock_irqsave(&ag_lock, flags);
	c[0] = ag_req; c[1] = ag_got; c[2] = ag_fail; c[3] = ag_bursts;
	c[4] = ag_fail_bursts; c[5] = ag_held_pages; c[6] = ag_shots_done; c[7] = ag_held_max;
	ff = ag_first_fail_ns; lf = ag_last_fail_ns;
	nf = ag_nfirst; nl = ag_nlast;
	memcpy(first, ag_first_free, sizeof(first));
	memcpy(last, ag_last_free, sizeof(last));
	spin_unlock_irqrestore(&ag_lock, flags);
	seq_printf(m, "req %llu\ngot %llu\nfail %llu\nbursts %llu\nfail_bursts %llu\nheld %llu\nshots %llu\nheld_max %llu\n",
		   c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]);
	seq_printf(m, "running %d\ngfp %d\nfirst_fail_ns %lld\nlast_fail_ns %lld\n", ag_running, ag_gfp_class, ff, lf);
	ag_print_zones(m, "first_fail_free", first, nf);
	ag_print_zones(m, "last_fail_free", last, nl);
	return 0;
}

static int ag_open(struct inode *inode, struct file *file)
{
	return single_open(file, ag_show, NULL);
}

static ssize_t ag_write(struct file *file, const char __user *ubuf, size_t len, loff_t *off)
{
	char buf[128];
	long a, b2;
	long long c, d;
	unsigned long flags;
	int ret = -EINVAL;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = 0;
	spin_lock_irqsave(&ag_lock, flags);
	if (sscanf(buf, "config %ld %ld %lld %lld", &a, &b2, &c, &d) == 4) {
		if ((a == 0 || a == 1) && b2 >= 0 && c >= 0 && d >= 0) {
			ag_gfp_class = a;
			ag_gfp = (a == 0 ? GFP_ATOMIC : GFP_NOWAIT) | __GFP_NOWARN;
			ag_pages_per_burst = b2;
			ag_interval_ns = c * NSEC_PER_USEC;
			ag_hold_ns = d * NSEC_PER_USEC;
			ret = len;
		}
	} else if (sscanf(buf, "shot %ld %lld", &a, &c) == 2) {
		if (a >= 0 && c >= 0 && ag_nshots < AG_MAX_SHOTS) {
			ag_shots[ag_nshots].pages = a;
			ag_shots[ag_nshots].hold_ns = c * NSEC_PER_USEC;
			ag_nshots++;
			ret = len;
		} else {
			ret = -EBUSY;
		}
	} else if (!strncmp(buf, "start", 5)) {
		ag_running = true;
		ag_next_burst = ktime_get();
		ret = len;
	} else if (!strncmp(buf, "stop", 4)) {
		ag_running = false;
		ret = len;
	}
	spin_unlock_irqrestore(&ag_lock, flags);
	return ret;
}

static const struct proc_ops ag_fops = {
	.proc_open = ag_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
	.proc_write = ag_write,
};

static int __init ag_init(void)
{
	if (!proc_create("atomgym_atomic", 0600, NULL, &ag_fops))
		return -ENOMEM;
	hrtimer_init(&ag_timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL_SOFT);
	ag_timer.function = ag_tick;
	hrtimer_start(&ag_timer, ms_to_ktime(1), HRTIMER_MODE_REL_SOFT);
	return 0;
}

static void __exit ag_exit(void)
{
	struct ag_burst *b, *tmp;
	unsigned long flags;

	hrtimer_cancel(&ag_timer);
	remove_proc_entry("atomgym_atomic", NULL);
	spin_lock_irqsave(&ag_lock, flags);
	list_for_each_entry_safe(b, tmp, &ag_held, node)
		ag_free_burst(b);
	spin_unlock_irqrestore(&ag_lock, flags);
}

module_init(ag_init);
module_exit(ag_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("atomgym: timer-driven order-0 atomic allocation bursts with failure counters");
