#!/bin/bash
# bench/standby.sh [SIZES_MIB...]: what `qemu-upgrade standby` (issue 16, hot standby by COLO
# checkpoints) costs a busy guest, and how long its failover takes. For guests of SIZES_MIB MiB
# (default 512 2048) and checkpoint intervals INTERVALS (ms, default "100 1000"), RUNS runs each
# (default 2); appends every run to bench/standby.csv and writes bench/STANDBY-RESULTS.md from
# this invocation's runs.
#
# The two hosts are network namespaces A and B joined by a veth, the TLS agent on B: the
# standby tests' setup (tests/lib/remote.sh, tests/lib/standby.sh), reused here as they are.
# The guest is tests/lib/vm.sh's (QEMU 11.1.3 from tests/qemu-versions/fetch.sh sid, -accel
# tcg, RAM a shared memfd), with memcheck rewriting MEMCHECK_MIB MiB continuously and one
# virtio-net on a tap (vhost=off, vnet_hdr=off; a tap of the same name on B). Each run, on a
# fresh VM:
#   1. unprotected: over a WINDOW-second window, the guest's write rate (from its MEMCHECK pass
#      lines) and `ping -i 0.2` from A's host side of the tap (bench/standby.py window);
#   2. `qemu-upgrade standby start --interval MS`, two checkpoints, then the same window
#      (pings through colo-compare), `standby status --json` (checkpoints, pause median and
#      max, initial pause), the secondary's RSS on B;
#   3. failover: SIGKILL of the primary QEMU, then B's monitor polled until the guest runs
#      there out of COLO (bench/standby.py failover); then every process of the run is killed
#      by PID (the namespaces hold only this script's processes).
#
# Environment: INTERVALS ("100 1000"), RUNS (2), WINDOW (seconds, 20), MEMCHECK_MIB (32), PINGS
# (1; 0: no pings in the windows, the guest's network idle), QU_BIN
# (<repo>/build/qemu-upgrade-test: the test hooks point it at the bench's own
# agent policy and state directory), CSV (bench/standby.csv), OUT (bench/STANDBY-RESULTS.md).
# Needs root, ip, ping, jq, socat, python3; the guest is built by tests/guest/build.sh.
set -u
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(512 2048)
SET_INTERVALS=${INTERVALS+set} SET_RUNS=${RUNS+set}
INTERVALS=${INTERVALS:-100 1000}
RUNS=${RUNS:-2}
WINDOW=${WINDOW:-20}
MEMCHECK_MIB=${MEMCHECK_MIB:-32}
# The build with the test hooks, as the standby tests use: the same code, plus the environment
# variables that point it at a configuration and a state directory of the bench's own
# (QEMU_UPGRADE_CONF for the agent's policy, QEMU_UPGRADE_STATE_DIR for the supervisor's).
QU_BIN=${QU_BIN:-$ROOT/build/qemu-upgrade-test}
CSV=${CSV:-$BENCH/standby.csv}
RESULTS=${OUT:-$BENCH/STANDBY-RESULTS.md} # OUT itself is the standby wrapper's (tests/lib/standby.sh)
COMMAND="bench/standby.sh${*:+ $*}"
[ -z "$SET_RUNS" ] && [ "$RUNS" = 2 ] || COMMAND="RUNS=$RUNS $COMMAND"
[ -z "$SET_INTERVALS" ] && [ "$INTERVALS" = "100 1000" ] || COMMAND="INTERVALS=\"$INTERVALS\" $COMMAND"
[ "$WINDOW" = 20 ] || COMMAND="WINDOW=$WINDOW $COMMAND"
[ "$MEMCHECK_MIB" = 32 ] || COMMAND="MEMCHECK_MIB=$MEMCHECK_MIB $COMMAND"
export PINGS=${PINGS:-1}
[ "$PINGS" = 1 ] || COMMAND="PINGS=$PINGS $COMMAND"
[ "$CSV" = "$BENCH/standby.csv" ] || COMMAND="CSV=$CSV $COMMAND"
[ "$RESULTS" = "$BENCH/STANDBY-RESULTS.md" ] || COMMAND="OUT=$RESULTS $COMMAND"
[ "$QU_BIN" = "$ROOT/build/qemu-upgrade-test" ] || COMMAND="QU_BIN=$QU_BIN $COMMAND"

die() { echo "standby.sh: $*" >&2; exit 2; }
say() { echo "standby.sh: $*" >&2; }

[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, taps, the agent starts QEMU)"
for s in "${SIZES[@]}"; do
	[[ $s =~ ^[1-9][0-9]*$ ]] || die "sizes are MiB: '$s'"
done
for i in $INTERVALS; do
	[[ $i =~ ^[1-9][0-9]*$ ]] || die "INTERVALS are ms: '$i'"
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS is a positive number: '$RUNS'"
[[ $WINDOW =~ ^[1-9][0-9]*$ ]] || die "WINDOW is whole seconds: '$WINDOW'"
for c in ip ping jq socat python3; do
	command -v "$c" >/dev/null || die "needs $c"
done
[ -x "$QU_BIN" ] || make -C "$ROOT" build/qemu-upgrade-test >&2 || die "building qemu-upgrade-test failed"

# The tests' libraries: VMs and their cleanup by PID at exit (vm.sh), the two hosts and the
# agent (remote.sh), QEMU 11.1 and the `standby` wrapper (standby.sh).
. "$ROOT/tests/lib/vm.sh"
. "$ROOT/tests/lib/remote.sh"
. "$ROOT/tests/lib/standby.sh"
# standby_qemu exits (a TAP skip) when it cannot fetch 11.1: in a subshell, so that the bench
# says so and fails instead.
Q11=$(standby_qemu; echo "$Q11")
Q11=$(tail -n 1 <<<"$Q11")
[ -x "$Q11" ] || die "QEMU 11.1 (Debian sid) cannot be fetched, and COLO works on no other version: $Q11"
QEMU_VERSION=$("$Q11" --version | head -n 1)
vm_guest_build || die "the test guest could not be built"
remote_hosts || die "cannot create the two network namespaces"
export QEMU_UPGRADE_STATE_DIR
QEMU_UPGRADE_STATE_DIR=$(mktemp -d /tmp/qu-sbbench-state.XXXXXX) && _vm_paths+=("$QEMU_UPGRADE_STATE_DIR")
build_id() { echo "$(date -u -d "@$(stat -c %Y "$1")" +%Y-%m-%dT%H:%M:%SZ) sha256:$(sha256sum "$1" | cut -c1-12)"; }
QU_BUILD_ID=$(build_id "$QU_BIN")

INVOCATION=$(date -u +%Y%m%dT%H%M%SZ)-$$
FIELDS=(invocation timestamp size_mib interval_ms run result window_s memcheck_mib
	base_write_mib_s base_passes base_ping_avg_ms base_ping_max_ms base_ping_loss_pct base_ping_sent
	prot_write_mib_s prot_passes prot_ping_avg_ms prot_ping_max_ms prot_ping_loss_pct prot_ping_sent
	start_ms initial_pause_ms checkpoints_window ckpt_per_s checkpoints_total pause_median_ms pause_max_ms
	ckpt_veth_bytes secondary_rss_bytes failover_ms failover_line_ms primary_dead_ms a_pass_at_kill b_pass b_errors
	loadavg_start loadavg_end load1_start load1_end other_qemus tool_build note)
[ -s "$CSV" ] || (IFS=,; echo "${FIELDS[*]}") >"$CSV"
[ "$(head -n 1 "$CSV")" = "$(IFS=,; echo "${FIELDS[*]}")" ] || die "$CSV has other columns: move it away"
declare -A ROW
emit() {
	local f v line=()
	for f in "${FIELDS[@]}"; do
		v=${ROW[$f]:-}
		v=${v//$'\n'/ } v=${v//\"/\'}
		[[ $v != *,* ]] || v="\"$v\""
		line+=("$v")
	done
	(IFS=,; echo "${line[*]}") >>"$CSV"
}

GiB=$((1 << 30)) MiB=$((1 << 20))
mem_available() { awk '/^MemAvailable:/ { printf "%.0f\n", $2 * 1024 }' /proc/meminfo; }
other_qemus() {
	local n=0 p mine=" $(ip netns pids "$REMOTE_NS_A"; ip netns pids "$REMOTE_NS_B") "
	mine=${mine//$'\n'/ }
	for p in /proc/[0-9]*; do
		case $(readlink "$p/exe" 2>/dev/null) in
		*qemu-system*) [[ $mine == *" ${p#/proc/} "* ]] || n=$((n + 1)) ;;
		esac
	done
	echo "$n"
}
status_field() { standby status --pid "$VM_PID" --json && jq -r "$1" <<<"$OUT"; }
# veth_tx: bytes A has sent B over the veth (tests/lib/remote.sh names it qua$$). While the
# VM is protected that is the checkpoints' migration stream (QEMU's TLS), the packets
# filter-mirror copies to the secondary and the supervisor's heartbeats. QEMU 11.1's
# query-migrate gives no RAM counters in state `colo`, so this is the measure of what a
# checkpoint sends.
veth_tx() { ip -n "$REMOTE_NS_A" -s -j link show "qua$$" | jq -r '.[0].stats64.tx.bytes // empty'; }

# window PREFIX: one measured window (bench/standby.py window) into ROW[PREFIX_*].
window() {
	local p=$1 w
	w=$(python3 "$BENCH/standby.py" window "$VM_SERIAL" "$WINDOW" "$MEMCHECK_MIB" "$REMOTE_NS_A" "$GUEST_IP")
	if [ -n "$(jq -r '.error // empty' <<<"$w")" ] || [ -z "$w" ]; then
		ROW[note]+="$p window: $(jq -r '.error // empty' <<<"$w" 2>/dev/null)$w; "
		return 1
	fi
	ROW[${p}_write_mib_s]=$(jq -r .write_mib_s <<<"$w")
	ROW[${p}_passes]=$(jq -r '"\(.pass0)-\(.pass1) in \(.window_s) s"' <<<"$w")
	ROW[${p}_ping_avg_ms]=$(jq -r '.ping.avg_ms // empty' <<<"$w")
	ROW[${p}_ping_max_ms]=$(jq -r '.ping.max_ms // empty' <<<"$w")
	ROW[${p}_ping_loss_pct]=$(jq -r '.ping.loss_pct // empty' <<<"$w")
	ROW[${p}_ping_sent]=$(jq -r '.ping.sent // empty' <<<"$w")
	[ "$(jq -r .errors <<<"$w")" = 0 ] || { ROW[note]+="$p: memcheck errors $(jq -r .errors <<<"$w"); "; return 1; }
}

# end_run: every process of the run by PID (the VM and the agent, tracked by vm.sh; the
# secondary, the supervisor and whatever else is left in the two namespaces, which are this
# script's own), B's tap, the run's directories.
end_run() {
	local p
	for p in $(ip netns pids "$REMOTE_NS_A" 2>/dev/null) $(ip netns pids "$REMOTE_NS_B" 2>/dev/null); do
		kill -KILL "$p" 2>/dev/null
	done
	vm_stop "$VM_PID" 2>/dev/null
	[ -z "${REMOTE_AGENT:-}" ] || vm_stop "$REMOTE_AGENT" 2>/dev/null
	for p in $(seq 50); do
		[ -z "$(ip netns pids "$REMOTE_NS_A" 2>/dev/null)$(ip netns pids "$REMOTE_NS_B" 2>/dev/null)" ] && break
		sleep 0.1
	done
	ip -n "$REMOTE_NS_B" link del "$TAP" 2>/dev/null
	rm -rf -- "${VM_DIR:-/nonexistent}" "${MON:-/nonexistent}"
	rm -f -- "$QEMU_UPGRADE_STATE_DIR"/standby-*
}

# one_run SIZE INTERVAL RUN
one_run() {
	local size=$1 iv=$2 n=$3 rc t0 t1 c0 c1 b0 b1 sec f
	TAP=sbb$$r$n GUEST_IP=192.168.77.10
	MON=$(mktemp -d /tmp/qu-sbbench-mon.XXXXXX)
	# The bench's own monitor: the supervisor holds the first -qmp while it protects.
	if ! QEMU=$Q11 VM_MEM=${size}M VM_MEMCHECK_MIB=$MEMCHECK_MIB VM_APPEND="net_ip=$GUEST_IP/24" \
		VM_WRAP="ip netns exec $REMOTE_NS_A" vm_start "sbbench-$size" \
		-netdev "tap,id=hn0,ifname=$TAP,script=no,downscript=no,vhost=off,vnet_hdr=off" \
		-device virtio-net-pci,id=net0,netdev=hn0,mac=52:54:00:12:34:77 \
		-qmp "unix:$MON/bench.sock,server=on,wait=off" 2>"$MON/start.err"; then
		ROW[note]="the VM did not start: $(tr '\n' ' ' <"$MON/start.err")"
		return 1
	fi
	VM_QMP=$MON/bench.sock
	ip -n "$REMOTE_NS_A" addr add 192.168.77.1/24 dev "$TAP" && ip -n "$REMOTE_NS_A" link set "$TAP" up &&
		ip -n "$REMOTE_NS_B" tuntap add dev "$TAP" mode tap && ip -n "$REMOTE_NS_B" addr add 192.168.77.1/24 dev "$TAP" &&
		ip -n "$REMOTE_NS_B" link set "$TAP" up || { ROW[note]="cannot set up the taps"; return 1; }
	vm_wait_ready 300 2>/dev/null || { ROW[note]="the guest did not come up: $(tail -n 2 "$VM_SERIAL" | tr '\n' ' ')"; return 1; }
	REMOTE_AGENT_BINARIES=$Q11 remote_agent_start "$VM_DIR" "$MON" 2>/dev/null || { ROW[note]="the agent did not start"; return 1; }

	# 1. Unprotected.
	window base || return 1

	# 2. Protected.
	t0=$(date +%s%N)
	standby start --pid "$VM_PID" --remote "$REMOTE_B_IP" --pki-dir "$REMOTE_PKI_A" --interval "$iv"
	rc=$?
	t1=$(date +%s%N)
	sec=$(secondary_of "$OUT")
	[ "$rc" = 0 ] && [ -n "$sec" ] || { ROW[note]="standby start: exit $rc: $OUT $(tail -n 3 <<<"$ERR")"; return 1; }
	ROW[start_ms]=$(((t1 - t0) / 1000000))
	for f in $(seq 600); do
		c0=$(status_field .checkpoints)
		[ "${c0:-0}" -ge 2 ] && break
		sleep 0.1
	done
	[ "${c0:-0}" -ge 2 ] || { ROW[note]="no 2 checkpoints in 60 s: $OUT"; return 1; }
	b0=$(veth_tx)
	window prot
	rc=$?
	c1=$(status_field .checkpoints)
	b1=$(veth_tx)
	ROW[secondary_rss_bytes]=$(awk '/^VmRSS:/ { printf "%.0f\n", $2 * 1024 }' "/proc/$sec/status" 2>/dev/null)
	standby status --pid "$VM_PID" --json
	ROW[initial_pause_ms]=$(jq -r '.initial_pause_ms // empty' <<<"$OUT")
	ROW[pause_median_ms]=$(jq -r '.pause_median_ms // empty' <<<"$OUT")
	ROW[pause_max_ms]=$(jq -r '.pause_max_ms // empty' <<<"$OUT")
	ROW[checkpoints_total]=$(jq -r '.checkpoints // empty' <<<"$OUT")
	[ "$(jq -r .state <<<"$OUT")" = protecting ] || { ROW[note]+="state after the window: $OUT; "; return 1; }
	[ "$rc" = 0 ] || return 1
	if [ -n "$c0" ] && [ -n "$c1" ]; then
		ROW[checkpoints_window]=$((c1 - c0))
		# Over the window's length as the window measured it (between its two pass lines).
		f=$(sed -n 's/.* in \([0-9.]*\) s$/\1/p' <<<"${ROW[prot_passes]}")
		ROW[ckpt_per_s]=$(awk -v c=$((c1 - c0)) -v s="$f" 'BEGIN { if (s > 0) printf "%.2f", c / s }')
		[ -z "$b0" ] || [ -z "$b1" ] || [ $((c1 - c0)) -le 0 ] || ROW[ckpt_veth_bytes]=$(((b1 - b0) / (c1 - c0)))
	fi

	# 3. Failover.
	ROW[a_pass_at_kill]=$(pass_of "$VM_SERIAL")
	f=$(python3 "$BENCH/standby.py" failover "$VM_PID" "/proc/$sec/root$MON/bench.sock" "/proc/$sec/root$VM_DIR/serial.log" 60)
	if [ -n "$(jq -r '.error // empty' <<<"$f")" ] || [ -z "$f" ]; then
		ROW[note]+="failover: $f; "
		return 1
	fi
	ROW[failover_ms]=$(jq -r .running_on_b_ms <<<"$f")
	ROW[failover_line_ms]=$(jq -r '.first_pass_line_on_b_ms // empty' <<<"$f")
	ROW[primary_dead_ms]=$(jq -r '.primary_dead_ms // empty' <<<"$f")
	ROW[b_pass]=$(jq -r '.b_pass // empty' <<<"$f")
	ROW[b_errors]=$(jq -r '.b_errors // empty' <<<"$f")
	[ "${ROW[b_errors]}" = 0 ] || { ROW[note]+="the guest on B: errors ${ROW[b_errors]:-?} (no pass line?); "; return 1; }
}

say "$QEMU_VERSION, -accel tcg, guests ${SIZES[*]} MiB, intervals $INTERVALS ms, $RUNS runs each, window $WINDOW s, namespaces $REMOTE_NS_A/$REMOTE_NS_B"
for size in "${SIZES[@]}"; do
	for iv in $INTERVALS; do
		for run in $(seq "$RUNS"); do
			need=$((2 * size * MiB + 3 * GiB / 2))
			ROW=([invocation]=$INVOCATION [timestamp]=$(date -u +%Y-%m-%dT%H:%M:%SZ) [size_mib]=$size
				[interval_ms]=$iv [run]=$run [window_s]=$WINDOW [memcheck_mib]=$MEMCHECK_MIB
				[loadavg_start]=$(cat /proc/loadavg) [load1_start]=$(cut -d' ' -f1 /proc/loadavg)
				[tool_build]=$QU_BUILD_ID [other_qemus]=$(other_qemus))
			if [ "$(mem_available)" -lt "$need" ]; then
				ROW[result]=skipped ROW[note]="needs $((need / MiB)) MiB available (2 x guest + 1.5 GiB), had $(($(mem_available) / MiB))"
			elif one_run "$size" "$iv" "$run"; then
				ROW[result]=ok
			else
				ROW[result]=failed
			fi
			ROW[loadavg_end]=$(cat /proc/loadavg) ROW[load1_end]=$(cut -d' ' -f1 /proc/loadavg)
			end_run
			emit
			say "$size MiB, $iv ms, run $run: ${ROW[result]}: write ${ROW[base_write_mib_s]:-?} -> ${ROW[prot_write_mib_s]:-?} MiB/s, ping avg ${ROW[base_ping_avg_ms]:-?} -> ${ROW[prot_ping_avg_ms]:-?} ms, pause median ${ROW[pause_median_ms]:-?} max ${ROW[pause_max_ms]:-?} ms, failover ${ROW[failover_ms]:-?} ms ${ROW[note]:-}"
		done
	done
done

python3 "$BENCH/standby.py" report "$CSV" "$INVOCATION" "$RESULTS" "$COMMAND" "$QEMU_VERSION" || die "report failed"
say "wrote $RESULTS (and appended to $CSV)"
