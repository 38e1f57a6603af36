#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build (or reuse) the Vela test kernel of flavour $VELA_KERNEL (common.sh):
# linux-source-7.2 from the build root, the project's patches from
# rust/patches and then rdma-tests/patches/kernel applied in order, the config fragments (vela.config, and
# strict.config for the strict flavour) on top of `vng --kconfig`. The tree is kept and rebuilt
# incrementally; a stamp keyed by every input skips make when nothing changed.
. "$(dirname "$0")/common.sh"
build_lock "$@"

"$VELA_TOP/tools/build/buildroot.sh"

SRC=$VELA_CACHE/work/$KTREE           # seen as /cache/$KTREE inside the root
fragments=("$VELA_TOP/tools/build/vela.config")
[ "$VELA_KERNEL" = strict ] && fragments+=("$VELA_TOP/tools/build/strict.config")
mkdir -p "$VELA_CACHE/work"
kver=$(chroot "$ROOT_DIR" dpkg-query -W -f='${Version}' linux-source-7.2)
# rust/patches/0000-cover-letter.patch is the series' cover letter, not a patch.
patches=()
for p in "$VELA_TOP"/rust/patches/*.patch "$VELA_TOP"/rdma-tests/patches/kernel/*.patch; do
	[ "${p##*/}" = 0000-cover-letter.patch ] || patches+=("$p")
done
key=$(inputs_hash "$kver" "$KMAKE" "${patches[@]}" "${fragments[@]}" \
	"$VELA_TOP/tools/build/kernel.sh" "$ROOT_DIR/.vela-stamp")

if [ -f "$SRC/.vela-stamp" ] && [ "$(cat "$SRC/.vela-stamp")" = "$key" ] &&
	[ -f "$SRC/arch/x86/boot/bzImage" ]; then
	exit 0
fi
rm -f "$SRC/.vela-stamp"

if [ "$(cat "$SRC/.vela-version" 2>/dev/null)" != "$kver" ]; then
	log "unpacking linux-source-7.2 $kver"
	rm -rf "$SRC" "$SRC.tmp"
	mkdir -p "$SRC.tmp"
	tar -C "$SRC.tmp" -xf "$ROOT_DIR/usr/src/linux-source-7.2.tar.xz"
	mv "$SRC.tmp/linux-source-7.2" "$SRC"
	rmdir "$SRC.tmp"
	mkdir -p "$SRC/.vela-patches"
	printf '%s\n' "$kver" >"$SRC/.vela-version"
fi

# The files a patch touches, relative to the tree (any a/ b/ prefix).
patch_files() {
	sed -n 's#^\(---\|+++\) [^/\t]*/\([^\t]*\).*#\2#p' "$@" | { grep -vx 'dev/null' || true; } | sort -u
}

# Bring the applied series in line with rust/patches: keep the longest
# common prefix, take back the rest of what is applied (newest first), then
# apply the remainder of the current series. Untouched files keep their
# mtimes, so make rebuilds only what the changed patches touch.
applied=()
for p in "$SRC"/.vela-patches/*.patch; do [ -f "$p" ] && applied+=("$p"); done
common=0
while [ $common -lt ${#applied[@]} ] && [ $common -lt ${#patches[@]} ] &&
	cmp -s "${applied[$common]}" "${patches[$common]}"; do
	common=$((common + 1))
done
# A re-cut series (patches reordered, split or folded) takes back and
# re-applies patches that end up changing nothing. Before taking any back,
# note the hash and mtime of every file they touch, in .vela-mtimes; once
# the series is applied, a file whose content is what it was gets its
# mtime back, so make rebuilds only what really changed. The list outlives
# a run that fails half-way: its first entry for a file is the state the
# last build saw, so later runs only add files it does not list yet.
mtimes=$SRC/.vela-mtimes
if [ $common -lt ${#applied[@]} ]; then
	touch "$mtimes"
	(cd "$SRC" && patch_files "${applied[@]:common}" | while IFS= read -r f; do
		[ -f "$f" ] || continue
		awk -v f="$f" '{ sub(/^[^ ]+ [^ ]+ /, "") } $0 == f { found = 1 } END { exit !found }' \
			"$mtimes" && continue
		printf '%s %s %s\n' "$(sha256sum <"$f" | cut -c1-64)" "$(stat -c %.9Y -- "$f")" "$f"
	done) >>"$mtimes"
fi
for ((i = ${#applied[@]} - 1; i >= common; i--)); do
	log "reverting $(basename "${applied[$i]}")"
	patch -d "$SRC" -p1 -R -s <"${applied[$i]}" || die "cannot revert ${applied[$i]}"
	rm -f "${applied[$i]}"
done
for ((i = common; i < ${#patches[@]}; i++)); do
	log "applying $(basename "${patches[$i]}")"
	# A dry run first: a patch that does not apply leaves the tree as it was.
	patch -d "$SRC" -p1 -s -N --dry-run <"${patches[$i]}" >/dev/null &&
		patch -d "$SRC" -p1 -s -N --no-backup-if-mismatch <"${patches[$i]}" ||
		die "cannot apply ${patches[$i]}"
	# Named by position: the glob above must list them in series order, and
	# rdma-tests/patches/kernel numbers its own series from 0001.
	cp "${patches[$i]}" "$SRC/.vela-patches/$(printf %04d $((i + 1)))-${patches[$i]##*/}"
done
if [ -f "$mtimes" ]; then
	kept=0
	while read -r sum mtime f; do
		[ -f "$SRC/$f" ] && [ "$(sha256sum <"$SRC/$f" | cut -c1-64)" = "$sum" ] || continue
		touch -m -d "@$mtime" -- "$SRC/$f"
		kept=$((kept + 1))
	done <"$mtimes"
	log "$kept of $(wc -l <"$mtimes") files the re-applied patches touch are unchanged: mtimes kept"
	rm -f "$mtimes"
fi

cfgkey=$(inputs_hash "$KMAKE" "${fragments[@]}" "${patches[@]}")
if [ "$(cat "$SRC/.vela-config-key" 2>/dev/null)" != "$cfgkey" ]; then
	log "configuring ($VELA_KERNEL): vng --kconfig + ${fragments[*]##*/}"
	cat "${fragments[@]}" >"$SRC/.vela.config"
	in_root /bin/sh -euc '
		cd "/cache/$1"
		# vng writes .config with the toolchain of its environment: LLVM=1
		# must be there already, or CC_IS_CLANG (which RUST needs under
		# KASAN) is decided for gcc.
		if [ -n "$2" ]; then export LLVM=1; fi
		vng --kconfig >/dev/null
		scripts/kconfig/merge_config.sh -m .config .vela.config >.vela-merge.log 2>&1 ||
			{ cat .vela-merge.log >&2; exit 1; }
		$3 -s olddefconfig
		$3 -s rustavailable
	' sh "$KTREE" "${KMAKE#make}" "$KMAKE"
	# Every option the fragment sets must have survived olddefconfig.
	bad=0
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=n) sym=${line%%=*}
			grep -q "^$sym=" "$SRC/.config" && { log "$sym is set"; bad=1; } ;;
		CONFIG_*) grep -qxF "$line" "$SRC/.config" || { log "missing: $line"; bad=1; } ;;
		esac
	done < <(cat "${fragments[@]}")
	[ $bad = 0 ] || die "the config fragment did not apply"
	printf '%s\n' "$cfgkey" >"$SRC/.vela-config-key"
fi

jobs=$(nproc)
log "building the $VELA_KERNEL kernel ($KMAKE -j$jobs; from scratch about 10 minutes fast, 17 strict)"
start=$(date +%s)
# CLIPPY=1: the kernel's Rust, rust/patches included, is compiled by clippy-driver with the
# kernel's lints, and a finding fails the build (Documentation/kernel-patches.rst). It
# compiles the same code; upstream's own Rust is clean under it.
in_root /bin/sh -euc "cd /cache/$KTREE && $KMAKE CLIPPY=1 -s -j$jobs" >&2
log "kernel built in $(( $(date +%s) - start )) s"
printf '%s\n' "$key" >"$SRC/.vela-stamp"
