#!/bin/bash
# Build the test guest: OUT_DIR/vmlinuz (Debian cloud kernel) and OUT_DIR/initrd.img
# (busybox + memcheck). Skips work whose outputs are newer than their inputs.
set -euo pipefail

out=${1:?usage: build.sh OUT_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

die() { echo "build.sh: $*" >&2; exit 1; }
for tool in gcc cpio gzip apt-get apt-cache dpkg-deb; do
	command -v "$tool" >/dev/null || die "missing tool: $tool"
done
busybox=/bin/busybox
# The initramfs has no libc, so busybox must be the static build.
if [ ! -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
	die "need a static $busybox (apt-get install busybox-static)"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/guest-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Kernel: the meta package only depends on the versioned package holding the image.
# The virtio-net driver and what it needs, in load order (the cloud kernel builds them as
# modules); tests with a network load them when the kernel command line has net_ip=.
net_modules="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net"
if [ ! -s "$out/vmlinuz" ] || [ ! -s "$out/modules/virtio_net.ko" ]; then
	pkg=$(apt-cache depends linux-image-cloud-amd64 |
		sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1)
	[ -n "$pkg" ] || die "cannot resolve the kernel package of linux-image-cloud-amd64 (apt-get update?)"
	(cd "$tmp" && apt-get -o APT::Sandbox::User=root download "$pkg" >/dev/null) || die "apt-get download $pkg failed"
	dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/kernel"
	mkdir -p "$out/modules"
	for m in $net_modules; do
		f=$(find "$tmp/kernel/lib/modules" -name "$m.ko*" | head -n 1)
		[ -n "$f" ] || die "module $m not in $pkg"
		case $f in
		*.xz) xz -dc "$f" >"$out/modules/$m.ko" ;;
		*) cp "$f" "$out/modules/$m.ko" ;;
		esac
	done
	cp "$tmp"/kernel/boot/vmlinuz-* "$out/vmlinuz.tmp"
	mv "$out/vmlinuz.tmp" "$out/vmlinuz"
	echo "build.sh: kernel from $pkg"
fi

# Initramfs: rebuilt when memcheck.c, this script or busybox changed.
if [ ! -s "$out/initrd.img" ] || [ "$here/memcheck.c" -nt "$out/initrd.img" ] ||
	[ "$here/build.sh" -nt "$out/initrd.img" ] || [ "$busybox" -nt "$out/initrd.img" ] ||
	[ "$out/modules/virtio_net.ko" -nt "$out/initrd.img" ]; then
	root=$tmp/root
	mkdir -p "$root"/{bin,dev,proc,sys,lib/modules}
	for m in $net_modules; do cp "$out/modules/$m.ko" "$root/lib/modules/"; done
	echo "$net_modules" >"$root/lib/modules/order"
	gcc -static -O2 -Wall -Wextra -Werror -o "$root/bin/memcheck" "$here/memcheck.c"
	cp "$busybox" "$root/bin/busybox"
	for applet in sh mount sed cat echo poweroff sleep insmod ifconfig ip ping route; do
		ln -s busybox "$root/bin/$applet"
	done
	cat > "$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# net_ip=A.B.C.D/N: bring up eth0 (virtio-net) so the host can ping the guest.
ip_cidr=$(sed -n 's/.*net_ip=\([0-9./]*\).*/\1/p' /proc/cmdline)
if [ -n "$ip_cidr" ]; then
	# Dependencies first; without modules.dep, retry until every module is in.
	for round in 1 2 3 4; do
		for m in $(cat /lib/modules/order); do
			[ -d /sys/module/$m ] || insmod /lib/modules/$m.ko 2>/dev/null
		done
	done
	ip link set lo up
	ip addr add "$ip_cidr" dev eth0 && ip link set eth0 up && echo "NET UP $ip_cidr"
fi
mib=$(sed -n 's/.*memcheck_mib=\([0-9]*\).*/\1/p' /proc/cmdline)
/bin/memcheck "${mib:-32}"
echo "MEMCHECK EXITED status=$?"
poweroff -f
INIT
	chmod 755 "$root/init"
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) > "$out/initrd.img.tmp"
	mv "$out/initrd.img.tmp" "$out/initrd.img"
	echo "build.sh: initrd with memcheck"
fi
