# PRE for nested-guest.sh l1 (sourced in L1): what L1 has of KVM and VFIO, and an mtty
# mdev instance (CONFIG_SAMPLE_VFIO_MDEV_MTTY=y in L1) for vfio-pci,sysfsdev= variants.
U=83b8f4f2-509f-382f-3c1e-e6bfe0fa1001
dmesg | grep -i -E "kvm|svm|mtty|vfio" | head -20
ls -l /dev/kvm /dev/vfio 2>&1
ls /sys/class/mdev_bus/ 2>&1; ls /sys/class/mdev_bus/*/mdev_supported_types/ 2>&1
T=$(ls -d /sys/class/mdev_bus/*/mdev_supported_types/mtty-2 2>/dev/null | head -1)
[ -n "$T" ] && echo $U > $T/create && echo "L1: mdev $U created on $T"
ls -l /sys/bus/mdev/devices/ /dev/vfio/ /dev/vfio/devices 2>&1
for i in 1 2; do read a _ </proc/uptime; qemu-system-x86_64 -version | head -1; read b _ </proc/uptime; echo "L1: qemu -version took $(echo "$b - $a" | bc) s"; done
