#!/usr/bin/env bash
# Fetch QEMU 10.0 from bookworm-backports into OUT_DIR/ROOT, side by side with the system's
# 7.2 (nothing is installed: the packages are only unpacked). Idempotent.
# Prints the path of the 10.0 binary.
set -euo pipefail
out=${1:?usage: fetch.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
bin=$out/ROOT/usr/bin/qemu-system-x86_64
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi
src=/etc/apt/sources.list.d/debian.sources
# Add the backports suite to the configured Debian source once (apt keeps preferring
# bookworm's own packages: backports are never installed by default).
if ! grep -q 'bookworm-backports' "$src" /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null; then
	sed -i '0,/^Suites: bookworm bookworm-updates$/s//Suites: bookworm bookworm-updates bookworm-backports/' "$src"
	apt-get update -qq
fi
V=1:10.0.2+ds-2+deb13u1~bpo12+1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get -o APT::Sandbox::User=root download -q \
	"qemu-system-x86=$V" "qemu-system-common=$V" "qemu-system-data=$V" "seabios=1.16.3-2~bpo12+1" >&2)
for d in "$tmp"/*.deb; do dpkg-deb -x "$d" "$tmp/ROOT"; done
rm -rf "$out/ROOT"
mv "$tmp/ROOT" "$out/ROOT"
"$bin" --version >&2
echo "$bin"
