#!/bin/sh
# Runs in L1 (exec'd by vela-init): every line of /run/vela/variants is
# "NAME TIMEOUT QEMU-ARGS..."; each L2 boot's console is prefixed with L1's uptime.
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
S=/run/vela; R=$S/results
read up _ </proc/uptime; echo "L1-UP: init after $up s; $(uname -r); $(nproc) cpus"
[ -e /dev/kvm ] && echo "L1: /dev/kvm present" || echo "L1: no /dev/kvm"
grep -o -w -E 'svm|npt|nrip_save|lbrv|vgif|vmcb_clean|flushbyasid|decodeassists|pausefilter|la57' /proc/cpuinfo | sort | uniq -c | tr '\n' ' '; echo
[ -x $S/pre.sh ] && . $S/pre.sh
while read -r name tmo args; do
	case $name in ''|'#'*) continue ;; esac
	read t0 _ </proc/uptime
	echo "L1-VARIANT $name start at $t0: qemu-system-x86_64 $args"
	eval "timeout -k 5 $tmo qemu-system-x86_64 $args" </dev/null 2>&1 | while IFS= read -r l; do
		read u _ </proc/uptime; echo "[L1 $u] $l"; done
	read t1 _ </proc/uptime
	echo "L1-VARIANT $name end at $t1: $(echo "$t1 - $t0" | bc 2>/dev/null || echo "$t0 -> $t1") s"
done <$S/variants
echo VELA-GUEST-DONE
sync
exec /bin/busybox poweroff -f
