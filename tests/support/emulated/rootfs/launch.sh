#!/bin/sh
# Start the emulated device. Runs as pid 1 of `unshare --mount --pid --net --fork`: every mount below is private
# to this namespace and disappears with it. adbd listens on all interfaces of this network namespace only; the
# host reaches it through STATE_DIR/adbd.sock, relayed by forward.py (run with $PYTHON). The rootfs is read-only; the device's mutable state (/data, the fake
# /sys, /tmp) lives in STATE_DIR on the host, the shims' spool SPOOL_DIR (one per boot) is mounted at /hostcall.
#
#   launch.sh ROOTFS STATE_DIR PORT SPOOL_DIR
set -eu
rootfs=$1
state=$2
port=$3
spool=$4
mount --bind "$rootfs" "$rootfs"
mount -o remount,bind,ro "$rootfs"
for dir in data sys tmp; do
  mount --bind "$state/$dir" "$rootfs/$dir"
done
mount --bind "$spool" "$rootfs/hostcall"
mount -t proc proc "$rootfs/proc"
mount --rbind /dev "$rootfs/dev"
"${PYTHON:-python3}" "$(dirname "$0")/forward.py" --inner "unix:$state/adbd.sock" "tcp:127.0.0.1:$port" &
exec chroot "$rootfs" /usr/bin/env -i PATH=/system/bin:/usr/bin:/usr/sbin:/bin HOME=/data \
  TMPDIR=/data/local/tmp ANDROID_DATA=/data ADBD_PORT="$port" /usr/sbin/adbd
