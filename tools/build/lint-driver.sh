#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The driver's lints, as the kernel's own Rust is held to them: the kernel's
# rustfmt configuration (`make rustfmtcheck`) and the kernel's clippy lints
# (`make CLIPPY=1`), any finding an error. vela.ko is built again with
# clippy-driver into its own output, so the module the tests load is not the
# one clippy rebuilt.
. "$(dirname "$0")/common.sh"
build_lock "$@"

"$VELA_TOP/tools/build/kernel.sh"
if [ "${1:-}" = --fix ]; then
	in_root /bin/sh -euc 'cd /vela && rustfmt --config-path "/cache/$1/.rustfmt.toml" --edition 2021 accel/vela.rs' sh "$KTREE"
	exit 0
fi
log "rustfmt (the kernel's .rustfmt.toml) on accel/"
# rustfmt follows the module tree from the crate root.
in_root /bin/sh -euc 'cd /vela && rustfmt --check --config-path "/cache/$1/.rustfmt.toml" --edition 2021 accel/vela.rs' \
	sh "$KTREE" || die "accel/ is not formatted as the kernel's rustfmt wants (tools/build/lint-driver.sh --fix formats it)"
log "clippy (make CLIPPY=1) on vela.ko"
mkdir -p "$VELA_CACHE/work/$KMOD-clippy"
out=$(in_root /bin/sh -euc '$1 -s -C "/cache/$2" M=/vela MO="/cache/$3" CLIPPY=1 KRUSTFLAGS=-Dwarnings modules 2>&1' \
	sh "$KMAKE" "$KTREE" "$KMOD-clippy") || { printf '%s\n' "$out" >&2; die "clippy found problems in accel/"; }
# Warnings from C or kbuild itself would not fail the build above; they fail the lint.
if grep -q 'warning' <<<"$out"; then
	printf '%s\n' "$out" >&2
	die "the clippy build of vela.ko warned"
fi
# The kernel holds C to CONFIG_FRAME_WARN bytes of stack per function; rustc has no such
# warning, and a 4 KiB value moved through a few frames of the vGPU's creation once
# overflowed the 16 KiB stack. Hold vela.ko's functions to the same limit.
limit=$(sed -n 's/^CONFIG_FRAME_WARN=//p' "$VELA_CACHE/work/$KTREE/.config")
log "stack frames of vela.ko (at most ${limit:-2048} bytes, CONFIG_FRAME_WARN)"
big=$(in_root /bin/sh -euc 'objdump -d --no-show-raw-insn "/cache/$1/accel/vela.ko"' \
	sh "$KMOD-clippy" | awk -v limit="${limit:-2048}" '
	function hex(s,  i, n) {
		n = 0
		for (i = 1; i <= length(s); i++)
			n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
		return n
	}
	/^[0-9a-f]+ <.*>:$/ { fn = $2 }
	/sub +\$0x[0-9a-f]+,%rsp/ {
		match($0, /\$0x[0-9a-f]+/)
		n = hex(substr($0, RSTART + 3, RLENGTH - 3))
		if (n > limit) printf "%d bytes: %s\n", n, fn
	}')
[ -z "$big" ] || { printf '%s\n' "$big" >&2; die "vela.ko has functions with stack frames over ${limit:-2048} bytes"; }
log "accel/ is clean"
