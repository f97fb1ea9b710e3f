#!/bin/sh
# Start the emulated device. Runs as pid 1 of `unshare --mount --pid --fork`: every mount below is private to
# this namespace and disappears with it. The rootfs is read-only; the device's mutable state (/data, the fake
# /sys, /tmp and the /hostcall spool of the shims) lives in STATE_DIR on the host.
#
#   launch.sh ROOTFS STATE_DIR PORT
set -eu
rootfs=$1
state=$2
port=$3
mount --bind "$rootfs" "$rootfs"
mount -o remount,bind,ro "$rootfs"
for dir in data sys tmp hostcall; do
  mount --bind "$state/$dir" "$rootfs/$dir"
done
mount -t proc proc "$rootfs/proc"
mount --rbind /dev "$rootfs/dev"
exec chroot "$rootfs" /usr/bin/env -i PATH=/system/bin:/usr/bin:/usr/sbin:/bin HOME=/data \
  TMPDIR=/data/local/tmp ANDROID_DATA=/data ADBD_PORT="$port" /usr/sbin/adbd
