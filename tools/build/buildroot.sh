#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Make (once) the Debian trixie build root: the kernel toolchain, QEMU 11.1,
# linux-source-7.2 and the guest userspace. Rebuilt when the package lists change.
. "$(dirname "$0")/common.sh"

# Bump when the way the root is made changes; editing this script alone does
# not remake the root.
ROOT_FORMAT=2
lists=("$VELA_TOP/tools/build/packages.txt" "$VELA_TOP/tools/build/backports.txt"
	"$VELA_TOP/tools/build/kernel-versions.txt" "$VELA_TOP/tools/build/fetch-sources.sh")
key=$(inputs_hash "${lists[@]}" "format=$ROOT_FORMAT")

# Builds and VMs hold this lock shared while they use the root; replacing the
# root takes it exclusively, so it never disappears under a running build.
# A root that is current needs only the shared lock, so checking it does not
# wait for a long build (a kernel) that holds the root.
mkdir -p "$VELA_CACHE"
exec 9>"$VELA_CACHE/.root.lock"
install_init() {
	# The guest's init changes without the package list changing: refresh it on every run.
	install -D -m 0755 "$VELA_TOP/tools/build/guest-init" "$1/usr/local/sbin/vela-init"
}
for mode in -s -x; do
	flock $mode 9
	if [ -f "$ROOT_DIR/.vela-stamp" ] && [ "$(cat "$ROOT_DIR/.vela-stamp")" = "$key" ]; then
		cmp -s "$VELA_TOP/tools/build/guest-init" "$ROOT_DIR/usr/local/sbin/vela-init" ||
			install_init "$ROOT_DIR"
		exit 0
	fi
	flock -u 9
done
flock -x 9

if ! command -v mmdebstrap >/dev/null; then
	log "installing mmdebstrap on the host"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
fi

# Use the mirror the host already uses.
mirror=${VELA_MIRROR:-}
if [ -z "$mirror" ]; then
	mirror=$(grep -rhoE '(https?://[^ ]+/debian)/?( |$)' /etc/apt/sources.list \
		/etc/apt/sources.list.d/ 2>/dev/null | grep -v security | head -n1 | tr -d ' ' || true)
	mirror=${mirror%/}
	[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
fi

pkgs=$(grep -vE '^\s*(#|$)' "$VELA_TOP/tools/build/packages.txt" | paste -sd, -)
bpo=$(grep -vE '^\s*(#|$)' "$VELA_TOP/tools/build/backports.txt" | paste -sd' ' -)
kvers=$(grep -vE '^\s*(#|$)' "$VELA_TOP/tools/build/kernel-versions.txt" | paste -sd' ' -)

tmp=$ROOT_DIR.new
if [ -d "$tmp" ]; then
	# Never rm -rf a root that might carry mounts: check first.
	if grep -q " $tmp/" /proc/mounts; then die "$tmp has mounts; unmount first"; fi
	rm -rf "$tmp"
fi
mkdir -p "$VELA_CACHE"
log "making the trixie build root from $mirror (about 2-4 minutes)"
mmdebstrap --variant=apt --components=main --include="$pkgs" \
	--aptopt='APT::Install-Recommends "false"' \
	--customize-hook="chroot \"\$1\" apt-get install -y -q -t trixie-backports $bpo" \
	--customize-hook="for v in $kvers; do chroot \"\$1\" apt-get install -y -q \"linux-source-7.2=\$v\" && exit 0; done; exit 1" \
	--customize-hook="\"$VELA_TOP/tools/build/fetch-sources.sh\" \"\$1\"" \
	--customize-hook='chroot "$1" apt-get clean' \
	trixie "$tmp" "deb $mirror trixie main" "deb $mirror trixie-backports main" \
	"deb-src $mirror trixie main" >&2

mkdir -p "$tmp/vela" "$tmp/cache"
install_init "$tmp"
printf '%s\n' "$key" >"$tmp/.vela-stamp"
if [ -d "$ROOT_DIR" ]; then
	if grep -q " $ROOT_DIR/" /proc/mounts; then die "$ROOT_DIR has mounts; unmount first"; fi
	rm -rf "$ROOT_DIR"
fi
mv "$tmp" "$ROOT_DIR"
log "build root ready: $(chroot "$ROOT_DIR" rustc --version), $(chroot "$ROOT_DIR" qemu-system-x86_64 --version | head -n1)"
