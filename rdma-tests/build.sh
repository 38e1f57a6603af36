#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build the RDMA userspace the guest tests run, from Debian's sources in the
# build root (/usr/src/vela-src, fetched by tools/build/fetch-sources.sh):
#
#   rdma-core  librxe only (the Soft-RoCE provider), with Debian's quilt
#              series and rdma-tests/patches/rdma-core/*.patch: the same 56.1
#              as the root's libibverbs, so it is ABI-identical to it;
#   perftest   with Debian's series and rdma-tests/patches/perftest/*.patch
#              (--use_vela, --use_dmaheap), built against uapi/drm;
#   tests      rdma-tests/tests/, if it has a Makefile (see below).
#
# Each is built inside the root and cached under $VELA_CACHE/work/rdma-userspace
# (/cache/rdma-userspace in the root), keyed by the hash of its inputs: the
# tarballs, our patches, this script, the uapi header (perftest, tests), the
# tests' files (tests) and the root's .vela-stamp. A rerun with nothing changed
# only hashes and compares (about a second).
#
# Installed into the root (atomically: a temporary name, then rename, since VMs
# may be running on it), and recorded in $ROOT_DIR/.vela-rdma-stamp so a remade
# root is installed again:
#   /usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav34.so         patched
#   /usr/lib/x86_64-linux-gnu/libibverbs/librxe-debian-rdmav34.so  Debian's own
#   /usr/local/bin/ib_*_{bw,lat}, raw_ethernet_*, ...              perftest
# (vela-harness puts /usr/local/bin ahead of /usr/bin on the guest's PATH).
# The root is shared by every checkout using this cache, and the last build
# installed wins; the perftest tools of make bench (ib_write_bw, ib_read_bw,
# ib_write_lat) also go beside the tests (below), from where the harness ships
# them, so a bench always runs its own checkout's perftest.
# libibverbs loads the providers named in $RDMAV_DRIVERS before those of
# /etc/libibverbs.d, and the first provider to claim a device gets it, so
#   RDMAV_DRIVERS=rxe-debian <command>
# runs <command> on Debian's unpatched librxe (ibv_reg_dmabuf_mr() then fails
# with EOPNOTSUPP in libibverbs, as without the patch). IBV_CONFIG_DIR is not an
# environment variable: libibverbs has the directory compiled in.
#
# rdma-tests/tests/Makefile (written by the tests' authors) is run inside the
# root as
#   make -C /vela/rdma-tests/tests O=/cache/rdma-userspace/tests VELA_UAPI=/vela/uapi
# O=         the output directory: every file the build makes goes there,
#            none into the source tree (it is the read-only work tree);
# VELA_UAPI= the directory holding drm/vela_accel.h. That header includes
#            "drm.h", so also add -I/usr/include/drm (linux-libc-dev's).
# Outside the root: $VELA_CACHE/work/rdma-userspace/tests, or
# $VELA_CACHE/work/$VELA_RDMA_TESTS_DIR when that is set: a work tree's tests of
# its own beside the shared ones (vela-harness ships them from the same place).
#
# The root may lack libibumad-dev and libpci-dev, which perftest's configure
# requires: then their .debs (the root's own trixie versions) are fetched with
# apt-get into $VELA_CACHE/work/rdma-userspace/sysroot, not into the root.
. "$(dirname "$0")/../tools/build/common.sh"

# One build at a time (re-run under an exclusive lock, as build_lock does).
if [ -z "${VELA_RDMA_LOCKED:-}" ]; then
	mkdir -p "$VELA_CACHE"
	VELA_RDMA_LOCKED=1 exec flock -x "$VELA_CACHE/.build-rdma-userspace.lock" "$0" "$@"
fi

"$VELA_TOP/tools/build/buildroot.sh"
# Keep the root from being replaced while this builds and installs into it.
exec 9>"$VELA_CACHE/.root.lock"
flock -s 9

W=$VELA_CACHE/work/rdma-userspace     # /cache/rdma-userspace in the root
IW=/cache/rdma-userspace
SRCDIR=$ROOT_DIR/usr/src/vela-src
PDIR=$VELA_TOP/rdma-tests/patches
UAPI=$VELA_TOP/uapi/drm/vela_accel.h
LIBDIR=usr/lib/x86_64-linux-gnu
PROVDIR=$LIBDIR/libibverbs
# Where the tests go (the harness reads the same variable).
TDIR=${VELA_RDMA_TESTS_DIR:-rdma-userspace/tests}
mkdir -p "$W/out"

one() {
	# The single file matching a glob, or die.
	local f=("$@")
	[ ${#f[@]} = 1 ] && [ -f "${f[0]}" ] || die "expected one file, found: ${f[*]}"
	printf '%s\n' "${f[0]}"
}
rc_orig=$(one "$SRCDIR"/rdma-core_*.orig.tar.*)
rc_deb=$(one "$SRCDIR"/rdma-core_*.debian.tar.*)
pt_orig=$(one "$SRCDIR"/perftest_*.orig.tar.*)
pt_deb=$(one "$SRCDIR"/perftest_*.debian.tar.*)
shopt -s nullglob
rc_patches=("$PDIR"/rdma-core/*.patch)
pt_patches=("$PDIR"/perftest/*.patch)
shopt -u nullglob
tests=()
if [ -d "$VELA_TOP/rdma-tests/tests" ]; then
	# The tests' Makefile also installs the pyverbs tests (rdma-tests/pyverbs).
	mapfile -t tests < <(find "$VELA_TOP/rdma-tests/tests" "$VELA_TOP/rdma-tests/pyverbs" \
		-type f 2>/dev/null | LC_ALL=C sort)
fi
common=("$VELA_TOP/rdma-tests/build.sh" "$ROOT_DIR/.vela-stamp")
rc_key=$(inputs_hash "$rc_orig" "$rc_deb" "${rc_patches[@]}" "${common[@]}")
pt_key=$(inputs_hash "$pt_orig" "$pt_deb" "${pt_patches[@]}" "$UAPI" "${common[@]}")
# The tests' directory also gets the perftest tools vela-rdma-bench runs (below).
t_key=$(inputs_hash "${tests[@]}" "$UAPI" "${common[@]}" "perftest=$pt_key")
key=$(inputs_hash "rdma-core=$rc_key" "perftest=$pt_key")
rc_out=$W/out/rdma-core-$rc_key
pt_out=$W/out/perftest-$pt_key

# A stamp file holds the key of what was made; it is written last.
fresh() { [ "$(cat "$1" 2>/dev/null)" = "$2" ]; }
set_stamp() { printf '%s\n' "$2" >"$1.tmp" && mv -f "$1.tmp" "$1"; }

tests_wanted=0
[ -f "$VELA_TOP/rdma-tests/tests/Makefile" ] && tests_wanted=1
# The stamp says what was installed; the cmp catches a librxe that a package
# reinstall in the root put back.
if fresh "$ROOT_DIR/.vela-rdma-stamp" "$key" &&
	cmp -s "$rc_out/librxe-rdmav34.so" "$ROOT_DIR/$PROVDIR/librxe-rdmav34.so" &&
	{ [ $tests_wanted = 0 ] || fresh "$VELA_CACHE/work/$TDIR/.vela-stamp" "$t_key"; }; then
	exit 0
fi

# Unpack $2 (orig) and $3 (debian/) into $1, apply Debian's quilt series, then
# ours ($4...). The tree is made under a temporary name and renamed.
unpack() {
	local dest=$1 orig=$2 deb=$3 p opts
	shift 3
	rm -rf "$dest.tmp"
	mkdir -p "$dest.tmp"
	tar -C "$dest.tmp" --strip-components=1 --no-same-owner -xf "$orig"
	tar -C "$dest.tmp" --no-same-owner -xf "$deb"
	if [ -f "$dest.tmp/debian/patches/series" ]; then
		while read -r p opts; do
			case $p in '' | '#'*) continue ;; esac
			# shellcheck disable=SC2086 # opts: patch's own options, e.g. -p0
			patch -d "$dest.tmp" ${opts:--p1} -s -N --no-backup-if-mismatch \
				<"$dest.tmp/debian/patches/$p" || die "cannot apply Debian's $p"
		done <"$dest.tmp/debian/patches/series"
	fi
	for p in "$@"; do
		patch -d "$dest.tmp" -p1 -s -N --no-backup-if-mismatch <"$p" ||
			die "cannot apply $p"
	done
	rm -rf "$dest"
	mv "$dest.tmp" "$dest"
}

# rdma-core: configure as Debian does (debian/rules, hardening flags), build
# the rxe provider only (ninja builds the libibverbs it links against too).
if [ ! -f "$rc_out/librxe-rdmav34.so" ]; then
	# The provider is only ABI-compatible with the libibverbs of its own
	# release (IBVERBS_PRIVATE_<n>, struct verbs_context_ops).
	rc_ver=$(basename "$rc_deb")
	rc_ver=${rc_ver#rdma-core_}
	rc_ver=${rc_ver%.debian.tar.*}
	have=$(chroot "$ROOT_DIR" dpkg-query -W -f='${Version}' libibverbs1)
	[ "$have" = "$rc_ver" ] ||
		die "the root's libibverbs1 is $have, the rdma-core source $rc_ver: refetch the sources"
	log "building rdma-core's librxe ($(basename "$rc_orig"), ${#rc_patches[@]} patch(es))"
	start=$(date +%s)
	unpack "$W/rdma-core" "$rc_orig" "$rc_deb" "${rc_patches[@]}"
	rm -rf "$W/rdma-core-build"
	in_root /bin/sh -euc '
		export DEB_BUILD_MAINT_OPTIONS=hardening=+all
		eval "$(dpkg-buildflags --export=sh)"
		mkdir -p "$2" && cd "$2"
		cmake -GNinja -DDISTRO_FLAVOUR=Debian -DCMAKE_BUILD_TYPE=Release \
			-DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_LIBDIR=lib/x86_64-linux-gnu \
			-DCMAKE_INSTALL_SYSCONFDIR:PATH=/etc -DCMAKE_INSTALL_RUNDIR:PATH=/run \
			-DNO_MAN_PAGES=1 -DNO_PYVERBS=1 "$1" >cmake.log 2>&1 ||
			{ tail -n 30 cmake.log; exit 1; }
		ninja lib/librxe-rdmav34.so >ninja.log 2>&1 || { tail -n 50 ninja.log; exit 1; }
	' sh "$IW/rdma-core" "$IW/rdma-core-build" >&2
	rm -rf "$rc_out.tmp"
	mkdir -p "$rc_out.tmp"
	cp "$W/rdma-core-build/lib/librxe-rdmav34.so" "$rc_out.tmp/"
	rm -rf "$rc_out"
	mv "$rc_out.tmp" "$rc_out"
	log "librxe built in $(($(date +%s) - start)) s"
fi

# Development files perftest's configure requires and the root may lack.
sysroot=$W/sysroot
need=()
[ -f "$ROOT_DIR/usr/include/infiniband/umad.h" ] || need+=(libibumad-dev)
[ -f "$ROOT_DIR/usr/include/pci/pci.h" ] ||
	[ -f "$ROOT_DIR/usr/include/x86_64-linux-gnu/pci/pci.h" ] || need+=(libpci-dev)
fetch_dev() {
	[ $# -gt 0 ] || return 0
	fresh "$sysroot/.vela-stamp" "$(inputs_hash "$@" "$ROOT_DIR/.vela-stamp")" && return 0
	log "the root lacks $*: fetching them into $sysroot (add them to tools/build/packages.txt)"
	rm -rf "$sysroot" "$W/apt"
	in_root /bin/sh -euc '
		A=$1; S=$2; shift 2
		mkdir -p "$A/lists/partial" "$A/archives/partial" "$A/debs" "$S/lib"
		# A private apt state: nothing in the root changes.
		apt() {
			apt-get -q -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A" \
				-o "Dir::Cache::archives=$A/archives" -o Debug::NoLocking=1 \
				-o APT::Sandbox::User=root "$@"
		}
		apt update >/dev/null
		cd "$A/debs"
		apt download "$@" >/dev/null
		for d in ./*.deb; do dpkg-deb -x "$d" "$S"; done
		ln -sf /usr/lib/x86_64-linux-gnu/libpci.so.3 "$S/lib/libpci.so"
		ln -sf /usr/lib/x86_64-linux-gnu/libibumad.so.3 "$S/lib/libibumad.so"
	' sh "$IW/apt" "$IW/sysroot" "$@" >&2
	set_stamp "$sysroot/.vela-stamp" "$(inputs_hash "$@" "$ROOT_DIR/.vela-stamp")"
}
fetch_dev "${need[@]}"

if [ ! -f "$pt_out/.done" ]; then
	log "building perftest ($(basename "$pt_orig"), ${#pt_patches[@]} patch(es))"
	start=$(date +%s)
	unpack "$W/perftest" "$pt_orig" "$pt_deb" "${pt_patches[@]}"
	rm -rf "$pt_out.tmp"
	in_root /bin/sh -euc '
		export DEB_BUILD_MAINT_OPTIONS=hardening=+all
		eval "$(dpkg-buildflags --export=sh)"
		S=$3
		CPPFLAGS="$CPPFLAGS -I/vela/uapi -I/usr/include/drm -I$S/usr/include -I$S/usr/include/x86_64-linux-gnu"
		LDFLAGS="$LDFLAGS -L$S/lib"
		cd "$1"
		autoreconf -fi >autoreconf.log 2>&1 || { tail -n 30 autoreconf.log; exit 1; }
		opts=--enable-vela
		grep -q enable-dmaheap configure && opts="$opts --enable-dmaheap"
		./configure --prefix=/usr/local $opts CPPFLAGS="$CPPFLAGS" LDFLAGS="$LDFLAGS" \
			>configure.log 2>&1 || { tail -n 30 configure.log; exit 1; }
		make -j"$(nproc)" >make.log 2>&1 || { grep -E "error|Error" make.log | head -n 30; exit 1; }
		make install-exec DESTDIR="$2" >/dev/null
	' sh "$IW/perftest" "$IW/out/perftest-$pt_key.tmp" "$IW/sysroot" >&2
	touch "$pt_out.tmp/.done"
	rm -rf "$pt_out"
	mv "$pt_out.tmp" "$pt_out"
	log "perftest built in $(($(date +%s) - start)) s"
fi

# Install into the root. Debian's librxe is kept (once, checked against
# dpkg's md5sum so a patched one is never taken for it) as librxe-debian.
if ! fresh "$ROOT_DIR/.vela-rdma-stamp" "$key" ||
	! cmp -s "$rc_out/librxe-rdmav34.so" "$ROOT_DIR/$PROVDIR/librxe-rdmav34.so"; then
	log "installing librxe and perftest into the build root"
	rm -f "$ROOT_DIR/.vela-rdma-stamp"
	sums=$(cat "$ROOT_DIR"/var/lib/dpkg/info/ibverbs-providers*.md5sums)
	want=$(awk -v f="$PROVDIR/librxe-rdmav34.so" '$2 == f { print $1 }' <<<"$sums")
	[ -n "$want" ] || die "dpkg knows no $PROVDIR/librxe-rdmav34.so"
	orig=$ROOT_DIR/$PROVDIR/librxe-debian-rdmav34.so
	if ! [ -f "$orig" ] || [ "$(md5sum <"$orig" | cut -d' ' -f1)" != "$want" ]; then
		cur=$ROOT_DIR/$PROVDIR/librxe-rdmav34.so
		[ "$(md5sum <"$cur" | cut -d' ' -f1)" = "$want" ] ||
			die "neither $cur nor $orig is Debian's librxe: reinstall ibverbs-providers"
		cp -p "$cur" "$orig.tmp"
		mv -f "$orig.tmp" "$orig"
	fi
	install_atomic() { # src dest mode
		install -m "$3" "$1" "$(dirname "$2")/.$(basename "$2").vela-tmp"
		mv -f "$(dirname "$2")/.$(basename "$2").vela-tmp" "$2"
	}
	install_atomic "$rc_out/librxe-rdmav34.so" "$ROOT_DIR/$PROVDIR/librxe-rdmav34.so" 0644
	mkdir -p "$ROOT_DIR/usr/local/bin"
	for f in "$pt_out"/usr/local/bin/*; do
		install_atomic "$f" "$ROOT_DIR/usr/local/bin/$(basename "$f")" 0755
	done
	set_stamp "$ROOT_DIR/.vela-rdma-stamp" "$key"
fi

if [ $tests_wanted = 1 ] && ! fresh "$VELA_CACHE/work/$TDIR/.vela-stamp" "$t_key"; then
	log "building rdma-tests/tests into $VELA_CACHE/work/$TDIR"
	rm -f "$VELA_CACHE/work/$TDIR/.vela-stamp"
	mkdir -p "$VELA_CACHE/work/$TDIR"
	in_root make -s -j"$(nproc)" -C /vela/rdma-tests/tests O="/cache/$TDIR" VELA_UAPI=/vela/uapi >&2
	# The perftest tools of vela-rdma-bench, this checkout's build: the harness ships
	# them with the tests into the VM, ahead of the root's /usr/local/bin on PATH, so a
	# bench runs the perftest of its own checkout even when another checkout using this
	# cache has since installed its own build into the root.
	for t in ib_write_bw ib_read_bw ib_write_lat; do
		cp "$pt_out/usr/local/bin/$t" "$VELA_CACHE/work/$TDIR/.$t.tmp"
		mv -f "$VELA_CACHE/work/$TDIR/.$t.tmp" "$VELA_CACHE/work/$TDIR/$t"
	done
	set_stamp "$VELA_CACHE/work/$TDIR/.vela-stamp" "$t_key"
fi
