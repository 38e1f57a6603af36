#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build (or reuse) the Vela test kernel: linux-source-7.2 from the build root,
# the project's patches from rust/patches applied in order, the config
# fragment on top of `vng --kconfig`. The tree is kept and rebuilt
# incrementally; a stamp keyed by every input skips make when nothing changed.
. "$(dirname "$0")/common.sh"
build_lock "$@"

"$VELA_TOP/tools/build/buildroot.sh"

SRC=$VELA_CACHE/work/linux           # seen as /cache/linux inside the root
mkdir -p "$VELA_CACHE/work"
kver=$(chroot "$ROOT_DIR" dpkg-query -W -f='${Version}' linux-source-7.2)
patches=("$VELA_TOP"/rust/patches/*.patch)
key=$(inputs_hash "$kver" "${patches[@]}" "$VELA_TOP/tools/build/vela.config" \
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
for ((i = ${#applied[@]} - 1; i >= common; i--)); do
	log "reverting $(basename "${applied[$i]}")"
	patch -d "$SRC" -p1 -R -s <"${applied[$i]}" || die "cannot revert ${applied[$i]}"
	rm -f "${applied[$i]}"
done
for ((i = common; i < ${#patches[@]}; i++)); do
	log "applying $(basename "${patches[$i]}")"
	patch -d "$SRC" -p1 -s -N --no-backup-if-mismatch <"${patches[$i]}" ||
		die "cannot apply ${patches[$i]}"
	cp "${patches[$i]}" "$SRC/.vela-patches/"
done

cfgkey=$(inputs_hash "$VELA_TOP/tools/build/vela.config" "${patches[@]}")
if [ "$(cat "$SRC/.vela-config-key" 2>/dev/null)" != "$cfgkey" ]; then
	log "configuring: vng --kconfig + tools/build/vela.config"
	cp "$VELA_TOP/tools/build/vela.config" "$SRC/.vela.config"
	in_root /bin/sh -euc '
		cd /cache/linux
		vng --kconfig >/dev/null
		scripts/kconfig/merge_config.sh -m .config .vela.config >/dev/null
		make -s olddefconfig
		make -s rustavailable
	'
	# Every option the fragment sets must have survived olddefconfig.
	bad=0
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=n) sym=${line%%=*}
			grep -q "^$sym=" "$SRC/.config" && { log "$sym is set"; bad=1; } ;;
		CONFIG_*) grep -qxF "$line" "$SRC/.config" || { log "missing: $line"; bad=1; } ;;
		esac
	done <"$VELA_TOP/tools/build/vela.config"
	[ $bad = 0 ] || die "the config fragment did not apply"
	printf '%s\n' "$cfgkey" >"$SRC/.vela-config-key"
fi

jobs=$(nproc)
log "building the kernel (make -j$jobs; about 10 minutes from scratch)"
start=$(date +%s)
in_root /bin/sh -euc "cd /cache/linux && make -s -j$jobs" >&2
log "kernel built in $(( $(date +%s) - start )) s"
printf '%s\n' "$key" >"$SRC/.vela-stamp"
