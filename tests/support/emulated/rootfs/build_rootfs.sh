#!/usr/bin/env bash
# Build the emulated device's root file system from Debian trixie packages: adbd (glibc 2.41, hence the chroot),
# busybox as /bin/sh and the coreutils, and the Android shims in shims/ under /system/bin.
#
#   tests/support/emulated/rootfs/build_rootfs.sh CACHE_DIR DEST
#
# The .debs are cached in CACHE_DIR/debs; the result replaces DEST. Needs dpkg and python3 (PYTHON).
# Exit status 3: the packages cannot be fetched.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 CACHE_DIR DEST" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
cache=$(cd "$1" && pwd)
dest=$2

if [ ! -e "$cache/debs/.complete" ]; then
  if ! "$here/../../../../scripts/fetch_debs.sh" --deps trixie "$cache/debs" adbd busybox-static >/dev/null; then
    echo "cannot fetch the Debian trixie packages adbd and busybox-static (scripts/fetch_debs.sh failed)" >&2
    exit 3
  fi
  touch "$cache/debs/.complete"
fi

tmp=$(mktemp -d "$cache/rootfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for deb in "$cache"/debs/*.deb; do dpkg -x "$deb" "$tmp"; done

cd "$tmp"
# trixie is merged-/usr: base-files would provide these links.
ln -s usr/bin bin
ln -s usr/sbin sbin
ln -s usr/lib lib
[ -e lib64 ] || ln -s usr/lib64 lib64
for applet in $(usr/bin/busybox --list); do
  [ -e "usr/bin/$applet" ] || [ -e "usr/sbin/$applet" ] || ln -s busybox "usr/bin/$applet"
done
mkdir -p system/bin data dev proc sys tmp hostcall
install -m 0755 "$here"/shims/* system/bin/
install -m 0644 "$here/build.prop" system/build.prop
echo "root:x:0:0:root:/data:/bin/sh" > etc/passwd
echo "root:x:0:" > etc/group
"${PYTHON:-python3}" "$here/patch_adbd.py" usr/lib/android-sdk/platform-tools/adbd

cd "$cache"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
