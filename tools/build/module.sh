#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build vela.ko against the Vela test kernel. Output goes to
# $VELA_CACHE/work/module-$VELA_KERNEL (kbuild's MO=), never into the work tree.
. "$(dirname "$0")/common.sh"
build_lock "$@"

"$VELA_TOP/tools/build/kernel.sh"
mkdir -p "$VELA_CACHE/work/$KMOD"
in_root /bin/sh -euc '$1 -s -C "/cache/$2" M=/vela MO="/cache/$3" modules' sh "$KMAKE" "$KTREE" "$KMOD" >&2
ls "$VELA_CACHE/work/$KMOD/accel/vela.ko" >/dev/null
