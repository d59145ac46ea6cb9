#!/bin/busybox sh
# PID 1 of the atomgym guest (atomgym/realkernel): load the drivers and the project's module,
# keep the disk open, run the plan (/plan, appended to the initramfs by the host), power off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
echo "@BOOT $(cut -d' ' -f1 /proc/uptime) $(uname -r)"
for m in $(cat /mods/list); do
  insmod "/mods/$m" || echo "@ERR insmod $m failed"
done
if ! insmod /mods/atomgym_atomic.ko; then
  echo "@ERR insmod atomgym_atomic.ko failed"
  poweroff -f
fi
i=0
while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
if [ -b /dev/vda ]; then
  agrun hold /dev/vda &
fi
echo "@READY $(cut -d' ' -f1 /proc/uptime) $(grep -c ^processor /proc/cpuinfo) $(grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2)"
if [ -f /plan ]; then
  agrun run /plan || echo "@ERR agrun exit $?"
else
  echo "@ERR no /plan in the initramfs"
fi
sync
poweroff -f
