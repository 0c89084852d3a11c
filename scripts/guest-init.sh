#!/bin/sh
# /init of the Linux boot tests' initramfs (built by scripts/mkinitramfs.py).
# Prints marker lines on the console the tests look for, loads the IDE and
# FAT modules, runs a short CPU-bound job, bumps a counter file on a FAT disk
# if there is one, and halts the machine.
/bin/busybox mkdir -p /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "FERRITE-MARKER: init running on $(uname -r) $(uname -m)"
for m in $(cat /lib/modules/load-order); do
    insmod /lib/modules/$m.ko || echo "FERRITE-ERROR: insmod $m failed"
done
# On request, the Bochs VBE DRM driver: the console moves to a framebuffer.
if grep -q -w ferrite.drm /proc/cmdline; then
    for m in $(cat /lib/modules/drm-order); do
        insmod /lib/modules/$m.ko || echo "FERRITE-ERROR: insmod $m failed"
    done
    echo "FERRITE-FB: $(cat /sys/class/graphics/fb0/name 2>/dev/null) $(cat /sys/class/graphics/fb0/virtual_size 2>/dev/null)"
    echo "FERRITE-VGA: text on the framebuffer console" > /dev/tty0
fi
# Give the SCSI layer time to probe the ATA ports.
i=0
while [ $i -lt 50 ] && ! grep -q ' sd[a-z]$' /proc/partitions; do
    sleep 0.1
    i=$((i + 1))
done
# The CPU job: compress and hash 1.3 MB of text, decompress and hash it
# again, and a shell loop. Deterministic, so its output is checked; the
# benchmark times it between the two lines (wall clock, on the host).
echo "FERRITE-JOB-START"
read t0 _ < /proc/uptime
seq 1 200000 > /tmp/data
echo "FERRITE-STEP: seq"
gz=$(gzip -6 -c < /tmp/data | tee /tmp/data.gz | sha256sum)
echo "FERRITE-STEP: gzip"
md5=$(gunzip -c < /tmp/data.gz | md5sum)
echo "FERRITE-STEP: gunzip"
rm -f /tmp/data /tmp/data.gz
n=0
while [ $n -lt 20000 ]; do n=$((n + 1)); done
echo "FERRITE-STEP: loop"
read t1 _ < /proc/uptime
echo "FERRITE-JOB: loop=$n gzip-sha256=${gz%% *} md5=${md5%% *} start=$t0 end=$t1"
# The floating-point job: a numeric kernel in awk (double arithmetic on the
# x87: Newton square roots, quotients, sums), timed by the benchmark like the
# CPU job; its result is checked to the last printed digit.
echo "FERRITE-FP-START"
fp=$(awk 'BEGIN { s = 0; for (i = 1; i <= 20000; i++) { x = i / 64; r = x; for (k = 0; k < 6; k++) r = (r + x / r) / 2; s += r / (1 + x * x) - 1 / (i + 0.5) } printf "%.15e", s }')
echo "FERRITE-FP: $fp"
# The processor's extensions as Linux sees them (--cpu).
flags=$(grep -o -w 'fxsr\|mmx\|sse\|sse2' /proc/cpuinfo | sort -u | tr '\n' ' ')
echo "FERRITE-CPU: ${flags% } (end)"
# A program a test appended to the initramfs, if any (its output checked).
if [ -x /extra/run ]; then
    echo "FERRITE-EXTRA: $(/extra/run)"
fi
for d in $(awk '$4 ~ /^(sd[a-z][0-9]*|sr[0-9])$/ {print $4}' /proc/partitions); do
    echo "FERRITE-BLOCK: $d"
done
# The FAT test disk: the first partition of sda, or sda itself.
for dev in /dev/sda1 /dev/sda; do
    [ -b $dev ] || continue
    if mount -t vfat -o iocharset=ascii $dev /mnt 2>/dev/null; then
        prev=$(cat /mnt/counter.txt 2>/dev/null || echo none)
        echo "FERRITE-DISK: $dev counter=$prev"
        case $prev in
            none) echo 1 > /mnt/counter.txt ;;
            *) echo $((prev + 1)) > /mnt/counter.txt ;;
        esac
        sync
        umount /mnt
        break
    fi
done
echo "FERRITE-DONE"
halt -f
