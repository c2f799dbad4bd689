#!/bin/sh
# Installs the Debian 12 packages erovm needs to build, test and demo.
# Idempotent and quiet: exits at once when everything is already present.
set -eu

PACKAGES="
build-essential pkg-config
liburing-dev libfdt-dev libcap-ng-dev libcmocka-dev
libprotobuf-c-dev protobuf-c-compiler libjson-c-dev libarchive-dev libseccomp-dev
linux-source-6.12 flex bison bc libelf-dev libssl-dev xz-utils
qemu-system-x86 busybox-static cpio kmod
erofs-utils e2fsprogs attr crun containerd
fio python3 python3-matplotlib
"

missing=""
for pkg in $PACKAGES; do
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
	case "$status" in
	ii*) ;;
	*) missing="$missing $pkg" ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages:$missing" >&2
	echo "deps: run 'make deps' as root (it uses apt-get)" >&2
	exit 1
fi

echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# shellcheck disable=SC2086
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } >"$log" 2>&1; then
	cat "$log" >&2
	echo "deps: apt-get failed" >&2
	exit 1
fi
