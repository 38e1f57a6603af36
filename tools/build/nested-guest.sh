#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# A nested (L2) guest for the vGPU path: QEMU inside the test VM (L1) booting a
# tiny guest, measured by hand (Documentation/nested.rst, issue 15).
#
#   nested-guest.sh kernel      tinyconfig + nested-l2.config, built in the root
#   nested-guest.sh initramfs   busybox-static and an init that reports its
#                               uptime and powers off (reboot -f, -no-reboot)
#   nested-guest.sh l1 L1_BZIMAGE VARIANTS [TIMEOUT] [PRE]
#                               boot the test VM's QEMU command line (no Vela
#                               devices) on L1_BZIMAGE with a share holding the
#                               L2 kernel, the initramfs, VARIANTS and
#                               nested-l1.sh, which the test VM's init runs (as
#                               the harness's init.sh): one L2 boot per line of
#                               VARIANTS ("NAME TIMEOUT QEMU-ARGS", paths under
#                               /run/vela), after PRE (sourced, optional).
#                               L1's console goes to stdout and serial.log.
#
# Everything lands in $VELA_CACHE/work/nested (seen as /cache/nested in the
# root); nothing touches the shared kernel trees. `nice` it: the host is shared.
. "$(dirname "$0")/common.sh"

N=$VELA_CACHE/work/nested
SRC=$N/linux-src            # linux-source-7.2 unpacked, left unconfigured (O= builds)
L2=$N/l2                    # the L2 kernel's output directory

l2_kernel() {
	[ -d "$SRC" ] || {
		mkdir -p "$N.tmp"
		tar -C "$N.tmp" -xf "$ROOT_DIR/usr/src/linux-source-7.2.tar.xz"
		mkdir -p "$N"
		mv "$N.tmp/linux-source-7.2" "$SRC"
		rmdir "$N.tmp"
	}
	cp "$VELA_TOP/tools/build/nested-l2.config" "$N/l2.fragment"
	local start=$(date +%s)
	in_root /bin/sh -euc '
		cd /cache/nested/linux-src
		make -s O=/cache/nested/l2 tinyconfig
		scripts/kconfig/merge_config.sh -m -O /cache/nested/l2 /cache/nested/l2/.config \
			/cache/nested/l2.fragment >/cache/nested/l2-merge.log 2>&1
		make -s O=/cache/nested/l2 olddefconfig
		make -s O=/cache/nested/l2 -j"$(nproc)" bzImage
	'
	bad=0
	while IFS= read -r line; do
		case "$line" in CONFIG_*=y)
			grep -qxF "$line" "$L2/.config" || { log "missing: $line"; bad=1; } ;;
		esac
	done <"$VELA_TOP/tools/build/nested-l2.config"
	[ $bad = 0 ] || die "the L2 config fragment did not apply"
	log "L2 kernel built in $(( $(date +%s) - start )) s: $L2/arch/x86/boot/bzImage ($(stat -c %s "$L2/arch/x86/boot/bzImage") bytes)"
}

l2_initramfs() {
	local d=$N/initramfs
	rm -rf "$d"
	mkdir -p "$d/bin" "$d/proc" "$d/sys" "$d/dev" "$d/tmp"
	cp "$ROOT_DIR/bin/busybox" "$d/bin/busybox"
	cat >"$d/init" <<'EOF'
#!/bin/busybox sh
# Applets by name without `busybox --install` (it took 100 s under TCG in TCG).
for a in mount cat uname reboot ls sleep dmesg; do eval "$a() { /bin/busybox $a \"\$@\"; }"; done
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
read up idle </proc/uptime
echo "L2-UP: shell after $up s of guest uptime; kernel $(uname -r)"
for d in /sys/bus/pci/devices/*; do
	[ -e "$d/vendor" ] && echo "L2-PCI: ${d##*/} $(cat $d/vendor):$(cat $d/device) class $(cat $d/class)"
done
# A command on the kernel command line (l2cmd=...) runs before power-off.
for a in $(cat /proc/cmdline); do
	case $a in l2cmd=*) /bin/busybox --install -s /bin; eval "${a#l2cmd=}" ;; esac
done
echo "L2-DONE"
reboot -f
EOF
	chmod 755 "$d/init"
	in_root /bin/sh -euc 'cd /cache/nested/initramfs && find . | cpio -o -H newc --quiet | gzip -9' \
		>"$N/l2.cpio.gz"
	log "initramfs: $N/l2.cpio.gz ($(stat -c %s "$N/l2.cpio.gz") bytes)"
}

# The test VM's QEMU (tools/harness/src/vm.rs, qemu_args) without the Vela devices and the
# switch: same machine, CPU, memory, root and command line.
l1_boot() {
	local kernel=$1 variants=$2 timeout=${3:-1800} pre=${4:-}
	local run=$N/run-$(date +%Y%m%d-%H%M%S)
	mkdir -p "$run/share/results"
	cp "$kernel" "$run/share/l1-bzImage"
	cp "$L2/arch/x86/boot/bzImage" "$run/share/l2-bzImage"
	cp "$N/l2.cpio.gz" "$run/share/l2.cpio.gz"
	# More files for the variants (other L2 kernels, say): L1_SHARE_FILES.
	for f in ${L1_SHARE_FILES:-}; do cp "$f" "$run/share/"; done
	cp "$variants" "$run/share/variants"
	[ -z "$pre" ] || install -m 755 "$pre" "$run/share/pre.sh"
	install -m 755 "$VELA_TOP/tools/build/nested-l1.sh" "$run/share/init.sh"
	local r=/cache/${run#"$VELA_CACHE/work/"}
	log "L1 run dir: $run"
	local start=$(date +%s.%N)
	flock -s "$VELA_CACHE/.root.lock" timeout -k 5 "$timeout" \
		unshare --mount --propagation private -- /bin/sh -euc '
		R=$1; W=$2; shift 2
		mount --rbind /dev "$R/dev"
		mount -t proc proc "$R/proc"
		mount --rbind /sys "$R/sys"
		mount --bind "$W" "$R/cache"
		exec chroot "$R" /usr/bin/env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin qemu-system-x86_64 "$@"
	' sh "$ROOT_DIR" "$VELA_CACHE/work" \
		-machine q35,accel=tcg,memory-backend=mem -cpu max,phys-bits=39,la57=off \
		-smp "${L1_CPUS:-2}" -m 2G -object memory-backend-memfd,id=mem,size=2G,share=on \
		-nodefaults -display none -serial stdio -no-reboot \
		-kernel "$r/share/l1-bzImage" \
		-append "console=ttyS0 root=vroot rootfstype=9p rootflags=trans=virtio,version=9p2000.L,msize=262144,cache=loose ro init=/usr/local/sbin/vela-init panic=-1 no_hash_pointers slub_debug=FZPU ${L1_APPEND:-}" \
		-virtfs local,path=/,mount_tag=vroot,security_model=none,readonly=on,multidevs=remap \
		-virtfs "local,path=$r/share,mount_tag=vshare,security_model=none,multidevs=remap" \
		</dev/null 2>&1 | tee "$run/serial.log" || true
	log "L1 ran $(echo "$(date +%s.%N) - $start" | bc) s wall; results in $run/share/results"
}

case ${1:-} in
kernel) l2_kernel ;;
initramfs) l2_initramfs ;;
l1) shift; l1_boot "$@" ;;
*) die "usage: $0 kernel|initramfs|l1 L1_BZIMAGE VARIANTS [TIMEOUT] [PRE]" ;;
esac
