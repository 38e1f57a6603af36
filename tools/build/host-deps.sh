#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Host packages the userspace tools need: libclang for the bindgen-generated
# uapi crate, libdrm's drm.h for the header it includes, and the tools the
# scripts use. Installed once; a no-op when present.
. "$(dirname "$0")/common.sh"

need=()
[ -f /usr/include/libdrm/drm.h ] || need+=(libdrm-dev)
ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 ||
	need+=(libclang-dev)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v unshare >/dev/null || need+=(util-linux)
command -v flock >/dev/null || need+=(util-linux)
[ ${#need[@]} = 0 ] && exit 0
log "installing host packages: ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
