#!/usr/bin/env bash
# fetch.sh SUITE [CACHE_DIR]: QEMU from another Debian suite (bullseye: 5.2, trixie: 10.0.13,
# sid: 11.1), made runnable on this Debian 12 host as a relocatable prefix, fetched once and
# kept in CACHE_DIR (default /var/cache/qemu-upgrade-tests). Prints the binary's path.
#
# Nothing is installed and the system's apt sources are not touched: a private sources file,
# package lists and cache (field-notes.md, "Other QEMU versions"). The whole dependency
# closure of qemu-system-x86 in that suite is resolved against an empty package status, then
# unpacked into PREFIX. A suite whose glibc is newer than the host's gets its own loader
# (patchelf --set-interpreter) and its libraries by RPATH (not RUNPATH: a RUNPATH covers only
# the binary's direct dependencies); an older suite runs on the host's glibc with its other
# libraries on the RPATH. BINDIR/qemu-bundle -> ../.. makes QEMU take its firmware, data and
# modules from the prefix. No wrapper script: the tool reads /proc/PID/exe and starts the new
# binary by path. The prefix is root's, in directories only root can write, as the tool
# requires of a binary it runs.
set -euo pipefail
suite=${1:?usage: fetch.sh bullseye|trixie|sid [CACHE_DIR]}
case $suite in
bullseye | trixie | sid) ;;
*) echo "fetch.sh: unknown suite '$suite' (bullseye, trixie or sid)" >&2; exit 2 ;;
esac
cache=${2:-/var/cache/qemu-upgrade-tests}
prefix=$cache/qemu-$suite
bin=$prefix/usr/bin/qemu-system-x86_64
if [ -x "$bin" ] && [ -e "$prefix/.complete" ]; then
	echo "$bin"
	exit 0
fi
umask 022
mkdir -p "$cache"
chmod 755 "$cache"
work=$(mktemp -d "$cache/.fetch-$suite.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/etc/preferences.d"
: >"$work/status"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
	>"$work/sources.list"
apt=(-o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=/dev/null
	-o "Dir::Etc::preferencesparts=$work/etc/preferences.d" -o "Dir::State::Lists=$work/lists"
	-o "Dir::State::status=$work/status" -o "Dir::Cache=$work" -o "Dir::Cache::archives=$work/archives"
	-o APT::Sandbox::User=root -o APT::Install-Recommends=false -o Debug::NoLocking=true)
apt-get "${apt[@]}" -qq update >&2
# Against an empty status every dependency is missing: the download is the whole closure.
apt-get "${apt[@]}" -qq -y --download-only install qemu-system-x86 >&2
root=$work/ROOT
for d in "$work"/archives/*.deb; do dpkg-deb -x "$d" "$root"; done
host_glibc=$(dpkg-query -W -f '${Version}' libc6)
suite_glibc=$(dpkg-deb -f "$work"/archives/libc6_*.deb Version)
libdirs=$prefix/lib/x86_64-linux-gnu:$prefix/usr/lib/x86_64-linux-gnu
target=$root/usr/bin/qemu-system-x86_64
if dpkg --compare-versions "$suite_glibc" gt "$host_glibc"; then
	# trixie and later ship the loader under usr/lib64 (merged /usr), bullseye under lib64.
	loader=$(cd "$root" && ls usr/lib64/ld-linux-x86-64.so.2 lib64/ld-linux-x86-64.so.2 2>/dev/null | head -n 1 || true)
	[ -n "$loader" ] || { echo "fetch.sh: $suite's libc6 has no ld-linux-x86-64.so.2" >&2; exit 1; }
	patchelf --set-interpreter "$prefix/$loader" "$target"
else
	# The host's glibc runs it: the suite's own libc must not be found on the RPATH.
	rm -f "$root"/lib/x86_64-linux-gnu/libc.so.* "$root"/usr/lib/x86_64-linux-gnu/libc.so.* \
		"$root"/lib/x86_64-linux-gnu/libm.so.* "$root"/usr/lib/x86_64-linux-gnu/libm.so.* \
		"$root"/lib/x86_64-linux-gnu/libpthread.so.* "$root"/usr/lib/x86_64-linux-gnu/libpthread.so.* \
		"$root"/lib/x86_64-linux-gnu/libdl.so.* "$root"/usr/lib/x86_64-linux-gnu/libdl.so.* \
		"$root"/lib/x86_64-linux-gnu/librt.so.* "$root"/usr/lib/x86_64-linux-gnu/librt.so.*
fi
patchelf --force-rpath --set-rpath "$libdirs" "$target"
ln -sfn ../.. "$root/usr/bin/qemu-bundle"
chmod -R go-w "$root"
chown -R root:root "$root"
rm -rf "$prefix"
mv "$root" "$prefix"
# The loader and RPATH name the prefix: only now can it run. Marked complete once it does.
"$bin" --version | head -n 1 >&2
echo "qemu-system-x86 $(dpkg-deb -f "$work"/archives/qemu-system-x86_*.deb Version) from $suite, glibc $suite_glibc" \
	>"$prefix/.complete"
echo "$bin"
