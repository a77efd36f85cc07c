#!/usr/bin/env bash
# bench/all.sh [N_VMS] [GIB] [JOBS]: the package-hook case. N VMs (default 20) of GIB GiB
# (default 1, memfd share=on, firmware only) run QEMU from an install prefix; the binary is
# replaced the way dpkg replaces it (a new file renamed over the old); then
# `qemu-upgrade --all --jobs JOBS` is timed. Appends a row to bench/ALL-RESULTS.md.
set -u
n=${1:-20} gib=${2:-1} jobs=${3:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
qu=${QU_BIN:-$root/build/qemu-upgrade}
[ -x "$qu" ] || make -s -C "$root" >/dev/null
accel=${ACCEL:-kvm}
T=$(mktemp -d /tmp/qu-bench-all.XXXXXX)
pids=()
cleanup() {
	local p
	for d in "$T"/vm*; do
		p=$(cat "$d/pid" 2>/dev/null) && kill "$p" 2>/dev/null
	done
	sleep 1
	for d in "$T"/vm*; do
		p=$(cat "$d/pid" 2>/dev/null) && kill -9 "$p" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT
P=$T/prefix
mkdir -p "$P/usr/bin" "$P/usr/share" "$P/usr/lib/x86_64-linux-gnu"
cp -a /usr/bin/qemu-system-x86_64 "$P/usr/bin/"
cp -a /usr/share/qemu /usr/share/seabios "$P/usr/share/"
cp -a /usr/lib/x86_64-linux-gnu/qemu "$P/usr/lib/x86_64-linux-gnu/"
for i in $(seq "$n"); do
	d=$T/vm$i
	mkdir -p "$d"
	"$P/usr/bin/qemu-system-x86_64" -accel "$accel" -machine q35,memory-backend=mem0 \
		-object "memory-backend-memfd,id=mem0,size=${gib}G,share=on" -m "${gib}G" \
		-nodefaults -display none -name "bench-$i" 2>/dev/null \
		-qmp "unix:$d/qmp.sock,server=on,wait=off" -daemonize -pidfile "$d/pid" || exit 1
done
sleep 2
# dpkg's way: the new file beside the old one, renamed over it.
cp -a "$P/usr/bin/qemu-system-x86_64" "$P/usr/bin/qemu-system-x86_64.dpkg-new"
mv -f "$P/usr/bin/qemu-system-x86_64.dpkg-new" "$P/usr/bin/qemu-system-x86_64"
start=$(date +%s.%N)
load=$(cut -d' ' -f1 /proc/loadavg)
out=$(QEMU_UPGRADE_CONF=/nonexistent "$qu" --all --binary "$P/usr/bin/qemu-system-x86_64" --jobs "$jobs" --json)
rc=$?
end=$(date +%s.%N)
wall=$(echo "$end - $start" | bc)
ok=$(jq '[.vms[] | select(.result == "upgraded")] | length' <<<"$out")
pause=$(jq '[.vms[].pause_ms] | sort | .[length/2|floor]' <<<"$out")
maxpause=$(jq '[.vms[].pause_ms] | max' <<<"$out")
# The new QEMUs' PIDs are in the pidfiles now; cleanup kills them.
f=$root/bench/ALL-RESULTS.md
[ -e "$f" ] || printf '# qemu-upgrade --all: many VMs after one package upgrade\n\nCommand: `bench/all.sh N GIB JOBS`. Host: %s CPUs, %s. QEMU 7.2 -> 7.2 (binary replaced by rename), firmware-only guests, `-accel %s`.\n\n| date | VMs | GiB each | jobs | upgraded | wall time s | median pause ms | max pause ms | load before | exit |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n' "$(nproc)" "$(uname -r)" "$accel" >"$f"
printf '| %s | %d | %d | %d | %d | %.2f | %.1f | %.1f | %s | %d |\n' "$(date -u +%FT%TZ)" "$n" "$gib" "$jobs" "$ok" "$wall" "$pause" "$maxpause" "$load" "$rc" >>"$f"
tail -n 1 "$f"
