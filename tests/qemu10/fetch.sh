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
V=1:10.0.2+ds-2+deb13u1~bpo12+1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A private sources file, lists and cache: the system's apt configuration is not touched
# (field-notes.md, "Other QEMU versions"; tests/qemu-versions/fetch.sh does the same).
mkdir -p "$tmp/lists/partial" "$tmp/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main" \
	>"$tmp/sources.list"
apt=(-o "Dir::Etc::sourcelist=$tmp/sources.list" -o Dir::Etc::sourceparts=/dev/null
	-o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp" -o "Dir::Cache::archives=$tmp/archives"
	-o APT::Sandbox::User=root -o Debug::NoLocking=true)
apt-get "${apt[@]}" -qq update >&2
(cd "$tmp" && apt-get "${apt[@]}" download -q \
	"qemu-system-x86=$V" "qemu-system-common=$V" "qemu-system-data=$V" "seabios=1.16.3-2~bpo12+1" >&2)
for d in "$tmp"/*.deb; do dpkg-deb -x "$d" "$tmp/ROOT"; done
rm -rf "$out/ROOT"
mv "$tmp/ROOT" "$out/ROOT"
"$bin" --version >&2
echo "$bin"
