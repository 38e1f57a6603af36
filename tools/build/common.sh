# SPDX-License-Identifier: GPL-2.0
# Shared settings for the Vela build scripts. Sourced, not executed.
#
# Everything the build makes lives under $VELA_CACHE, outside the work tree,
# so a clean clone reuses it and `git status` stays clean.

set -euo pipefail

VELA_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VELA_CACHE=${VELA_CACHE:-/var/cache/vela}
ROOT_DIR=$VELA_CACHE/root

log() { printf '[vela] %s\n' "$*" >&2; }
die() { printf '[vela] error: %s\n' "$*" >&2; exit 1; }

# The test kernel flavour (Documentation/testing.rst, "Two kernels"):
#   strict  clang-built, KASAN, UBSAN, KFENCE, KCOV on vela.ko, lockdep,
#           kmemleak: what `make check` and CI run on;
#   fast    gcc-built, lockdep and kmemleak only: about 2x faster guests, for
#           the edit loop (`make vm-test VELA_KERNEL=fast`).
# Each has its own tree and module output, so switching rebuilds nothing.
VELA_KERNEL=${VELA_KERNEL:-strict}
case $VELA_KERNEL in
strict) KMAKE="make LLVM=1" ;;
fast) KMAKE="make" ;;
*) die "VELA_KERNEL must be strict or fast, not '$VELA_KERNEL'" ;;
esac
# The flavour's tree, under $VELA_CACHE/work (/cache in the root). A worktree
# that changes the kernel config gives its tree another name with
# VELA_KERNEL_TREE (the harness reads the same variable), so that its builds
# and the others' do not rebuild one tree back and forth.
KTREE=${VELA_KERNEL_TREE:-linux-$VELA_KERNEL}
# Worktrees that build different driver sources side by side give each its
# own module output (the harness reads the same variable).
KMOD=${VELA_MODULE_DIR:-module-$VELA_KERNEL}

# The kernel tree and the module output are shared by every checkout that uses
# this cache (a CI clone next to a work tree, say): one build of a flavour at
# a time. The
# scripts re-run themselves under an exclusive lock; nested calls (module.sh
# calls kernel.sh) see VELA_BUILD_LOCKED and do not lock again.
build_lock() {
	if [ -z "${VELA_BUILD_LOCKED:-}" ]; then
		mkdir -p "$VELA_CACHE"
		VELA_BUILD_LOCKED=1 exec flock -x "$VELA_CACHE/.build-$KTREE.lock" "$0" "$@"
	fi
}

# Hash of files and strings, used as cache keys.
inputs_hash() {
	local f
	for f in "$@"; do
		if [ -f "$f" ]; then
			printf '%s\n' "${f#"$VELA_TOP"/}"
			cat "$f"
		else
			printf 'str:%s\n' "$f"
		fi
	done | sha256sum | cut -c1-16
}

# Run a command inside the build root, in a private mount namespace so the
# bind mounts vanish with the process and can never outlive it (an rm -rf of
# a root with a live /dev bind would destroy the host's /dev).
in_root() {
	flock -s "$VELA_CACHE/.root.lock" unshare --mount --propagation private -- /bin/sh -eu -c '
		R=$1; shift
		mount --rbind /dev "$R/dev"
		mount -t proc proc "$R/proc"
		mount --rbind /sys "$R/sys"
		mount -t tmpfs tmpfs "$R/tmp"
		mkdir -p "$R/vela"
		mount --bind "$VELA_TOP" "$R/vela"
		mkdir -p "$VELA_CACHE/work"
		mkdir -p "$R/cache"
		mount --bind "$VELA_CACHE/work" "$R/cache"
		exec chroot "$R" /usr/bin/env -i HOME=/root TERM=dumb \
			PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin "$@"
	' in_root "$ROOT_DIR" "$@"
}
export VELA_TOP VELA_CACHE VELA_KERNEL
