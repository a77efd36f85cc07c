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
if [ ! -s "$out/vmlinuz" ]; then
	pkg=$(apt-cache depends linux-image-cloud-amd64 |
		sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1)
	[ -n "$pkg" ] || die "cannot resolve the kernel package of linux-image-cloud-amd64 (apt-get update?)"
	(cd "$tmp" && apt-get -o APT::Sandbox::User=root download "$pkg" >/dev/null) || die "apt-get download $pkg failed"
	dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/kernel"
	cp "$tmp"/kernel/boot/vmlinuz-* "$out/vmlinuz.tmp"
	mv "$out/vmlinuz.tmp" "$out/vmlinuz"
	echo "build.sh: kernel from $pkg"
fi

# Initramfs: rebuilt when memcheck.c, this script or busybox changed.
if [ ! -s "$out/initrd.img" ] || [ "$here/memcheck.c" -nt "$out/initrd.img" ] ||
	[ "$here/build.sh" -nt "$out/initrd.img" ] || [ "$busybox" -nt "$out/initrd.img" ]; then
	root=$tmp/root
	mkdir -p "$root"/{bin,dev,proc,sys}
	gcc -static -O2 -Wall -Wextra -Werror -o "$root/bin/memcheck" "$here/memcheck.c"
	cp "$busybox" "$root/bin/busybox"
	for applet in sh mount sed cat echo poweroff sleep; do
		ln -s busybox "$root/bin/$applet"
	done
	cat > "$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
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
