#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build vela.ko against the Vela test kernel. Output goes to
# $VELA_CACHE/work/module (kbuild's MO=), never into the work tree.
. "$(dirname "$0")/common.sh"
build_lock "$@"

"$VELA_TOP/tools/build/kernel.sh"
mkdir -p "$VELA_CACHE/work/module"
in_root /bin/sh -euc 'make -s -C /cache/linux M=/vela MO=/cache/module modules "$@"' sh "$@" >&2
ls "$VELA_CACHE/work/module/accel/vela.ko" >/dev/null
