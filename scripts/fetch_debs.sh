#!/usr/bin/env bash
# Download Debian packages from another suite (bullseye, trixie, …) without touching the system's apt set-up.
#
#   scripts/fetch_debs.sh [--deps] SUITE DEST PKG...
#
# Uses a private apt configuration under .cache/apt/SUITE that points at the same Debian mirror as the
# system's own sources, so nothing is installed and nothing outside the project is changed. The .deb files
# land in DEST (cached: a second call with the same packages downloads nothing). With --deps the recursive
# Depends/Pre-Depends closure is fetched too (for building a chroot). Unpack with `dpkg -x FILE DIR`.
set -euo pipefail

deps=0
if [ "${1:-}" = "--deps" ]; then deps=1; shift; fi
if [ $# -lt 3 ]; then
  echo "usage: $0 [--deps] SUITE DEST PKG..." >&2
  exit 2
fi
suite=$1
mkdir -p "$2"
dest=$(cd "$2" && pwd)
shift 2

root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/.cache/apt/$suite"
mkdir -p "$state/lists/partial" "$state/cache/archives/partial"

mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
if [ -z "$mirror" ]; then
  echo "error: no Debian mirror found in the system's apt sources" >&2
  exit 2
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb [signed-by=$keyring] $mirror $suite main" > "$state/sources.list"

apt_opts=(
  -o "Dir::Etc::SourceList=$state/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache" -o "Dir::State::Status=/dev/null"
  -o "APT::Architecture=amd64" -o "APT::Architectures=amd64" -o "Debug::NoLocking=1"
  -o "Acquire::Check-Valid-Until=false"
)

# Refresh the private index at most once a day.
if [ -z "$(find "$state/lists" -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -n1)" ]; then
  apt-get "${apt_opts[@]}" -qq update >&2
fi

pkgs=("$@")
if [ "$deps" = 1 ]; then
  mapfile -t pkgs < <(apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests \
      --no-conflicts --no-breaks --no-replaces --no-enhances "$@" \
    | awk '/^[a-zA-Z0-9]/ {print $1}' | grep -v '^<' | sort -u)
fi

cd "$dest"
missing=()
for p in "${pkgs[@]}"; do
  compgen -G "${p}_*.deb" >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  # Virtual packages have no candidate: skip them quietly, the closure holds their providers.
  for p in "${missing[@]}"; do
    apt-get "${apt_opts[@]}" -qq download "$p" >&2 2>/dev/null || true
  done
fi
for p in "$@"; do
  if ! compgen -G "${p}_*.deb" >/dev/null; then
    echo "error: could not download $p from $suite" >&2
    exit 1
  fi
done
ls "$dest"/*.deb
