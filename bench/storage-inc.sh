#!/bin/bash
# bench/storage-inc.sh: `qemu-upgrade --remote --copy-storage-inc` against `--copy-storage` (the
# chain collapsed into one full copy) for a VM whose disk is a qcow2 overlay holding ~10% of
# its disk over a raw base; RUNS runs each (default 3); writes bench/STORAGE-INC-RESULTS.md.
#
# Hosts as in tests/lib/remote.sh: network namespaces A and B joined by a veth pair; the agent
# runs in B in a private mount namespace with a tmpfs over the VM's directory, the overlay's
# directory and the base's directory; the base is copied into B's tmpfs before each run (not
# timed). Guest: SeaBIOS only, idle, 256 MiB (kvm if a SeaBIOS guest runs under it, else tcg),
# with the overlay as a virtio disk; a fresh VM and a fresh overlay for every run.
# Environment: RUNS (3), BASE_MIB (1024), OVERLAY_MIB (104: ~10% of the base), QU_BIN
# (<repo>/build/qemu-upgrade), QU_ARGS (more options, e.g. --no-tls), OUT.
set -u
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
RUNS=${RUNS:-3} BASE_MIB=${BASE_MIB:-1024} OVERLAY_MIB=${OVERLAY_MIB:-104}
QU_BIN=${QU_BIN:-$ROOT/build/qemu-upgrade} QU_ARGS=${QU_ARGS:-} OUT=${OUT:-$BENCH/STORAGE-INC-RESULTS.md}
QEMU=/usr/bin/qemu-system-x86_64
COMMAND="RUNS=$RUNS BASE_MIB=$BASE_MIB OVERLAY_MIB=$OVERLAY_MIB${QU_ARGS:+ QU_ARGS=\"$QU_ARGS\"} bench/storage-inc.sh"
[ "$(id -u)" = 0 ] || { echo "storage-inc.sh: must run as root" >&2; exit 2; }
NS_A=qu-sbench-a-$$ NS_B=qu-sbench-b-$$ WORK=$(mktemp -d /var/tmp/qu-sbench.XXXXXX) CONF=$(mktemp)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}" $(ip netns pids "$NS_A" 2>/dev/null) $(ip netns pids "$NS_B" 2>/dev/null); do
		kill -KILL "$p" 2>/dev/null
	done
	sleep 0.3
	ip netns del "$NS_A" 2>/dev/null; ip netns del "$NS_B" 2>/dev/null
	rm -rf "$WORK" "$CONF"
}
trap cleanup EXIT
ip netns add "$NS_A" && ip netns add "$NS_B" || exit 2
ip link add "qsa$$" netns "$NS_A" type veth peer name "qsb$$" netns "$NS_B"
ip -n "$NS_A" addr add 10.78.0.1/24 dev "qsa$$" && ip -n "$NS_B" addr add 10.78.0.2/24 dev "qsb$$"
for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; done
ip -n "$NS_A" link set "qsa$$" up && ip -n "$NS_B" link set "qsb$$" up
. "$(dirname "${BASH_SOURCE[0]}")/pki.sh" # make_pki: the TLS agent's certificates
PKI=$WORK/pki
make_pki "$PKI" 10.78.0.2 || exit 2
# The agent's policy (docs/remote.md, "Authorization"; QEMU_UPGRADE_CONF: the build for tests).
printf 'agent_allow_root = yes\nagent_dirs = %s\nagent_tls_clients = tool.qu-bench\n' "$WORK" >"$CONF"
ACCEL=tcg
timeout 5 "$QEMU" -accel kvm -machine q35 -m 64M -nodefaults -display none -S -qmp stdio </dev/null >/dev/null 2>&1 && ACCEL=kvm

# The base: BASE_MIB of data (a pattern per 64 MiB), made once on A.
mkdir -p "$WORK/base" "$WORK/img" "$WORK/stage"
base=$WORK/base/base.raw
qemu-img create -q -f raw "$base" "${BASE_MIB}M"
for ((o = 0; o < BASE_MIB; o += 64)); do
	qemu-io -f raw -c "write -P $((o / 64 % 250 + 1)) ${o}M 64M" "$base" >/dev/null
done
ln "$base" "$WORK/stage/base.raw"  # B copies it from here (its base directory is a tmpfs)

results=()
for run in $(seq "$RUNS"); do
	for mode in copy-storage-inc copy-storage; do
		vmdir=$(mktemp -d "$WORK/vm.XXXXXX")
		top=$WORK/img/top.qcow2
		rm -f "$top"
		qemu-img create -q -f qcow2 -b "$base" -F raw "$top" "${BASE_MIB}M"
		# The overlay's data: OVERLAY_MIB spread over the disk in 8 MiB pieces.
		step=$((BASE_MIB * 8 / OVERLAY_MIB))
		for ((o = 0, n = 0; n < OVERLAY_MIB; o += step, n += 8)); do
			qemu-io -f qcow2 -c "write -P 0xee ${o}M 8M" "$top" >/dev/null
		done
		QEMU_UPGRADE_CONF=$CONF ip netns exec "$NS_B" unshare -m --propagation private sh -c \
			"mount -t tmpfs q '$vmdir' && mount -t tmpfs q '$WORK/img' && mount -t tmpfs q '$WORK/base' && exec '$QU_BIN' agent --listen 10.78.0.2:4779 --pki-dir '$PKI/b' --once" \
			>"$vmdir/agent.log" 2>&1 &
		agent=$!
		PIDS+=("$agent")
		for _ in $(seq 200); do grep -q 'agent: listening' "$vmdir/agent.log" 2>/dev/null && break; sleep 0.05; done
		[ "$mode" = copy-storage-inc ] && nsenter -t "$agent" -m cp --sparse=always "$WORK/stage/base.raw" "$base"
		ip netns exec "$NS_A" "$QEMU" -accel "$ACCEL" -machine q35 -m 256M -nodefaults -display none \
			-qmp "unix:$vmdir/qmp.sock,server=on,wait=off" -daemonize -pidfile "$vmdir/qemu.pid" \
			-drive "file=$top,format=qcow2,if=virtio,id=disk0" || exit 2
		PIDS+=("$(cat "$vmdir/qemu.pid")")
		sleep 1
		# shellcheck disable=SC2086
		rep=$(ip netns exec "$NS_A" "$QU_BIN" --pid "$(cat "$vmdir/qemu.pid")" --remote 10.78.0.2 --pki-dir "$PKI/a" \
			--"$mode" $QU_ARGS --json --quiet 2>"$vmdir/err")
		if [ "$(jq -r .result <<<"$rep")" != upgraded ]; then
			echo "storage-inc.sh: run $run $mode failed: $(cat "$vmdir/err")" >&2
			exit 1
		fi
		results+=("$mode $(jq -r '[.total_ms, .pause_ms, .disk_copied_bytes] | @tsv' <<<"$rep")")
		echo "run $run $mode: $(jq -c '{total_ms, pause_ms, disk_copied_bytes, strategy}' <<<"$rep")" >&2
		for p in $(ip netns pids "$NS_B"); do kill -KILL "$p" 2>/dev/null; done
		sleep 0.5
	done
done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { sort -n | awk 'NR==1{lo=$1} {hi=$1} END {printf "%s–%s", lo, hi}'; }
row() { # MODE FIELD SCALE
	local v
	v=$(printf '%s\n' "${results[@]}" | awk -v m="$1" -v f="$2" -v s="$3" '$1 == m {printf "%.0f\n", $f / s}')
	echo "$(median <<<"$v") ($(range <<<"$v"))"
}
{
	echo "# \`--copy-storage-inc\` against a full copy (\`--copy-storage\`, the chain collapsed)"
	echo
	echo "- Command: \`$COMMAND\`"
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC') (repository at $(git -C "$ROOT" rev-parse --short HEAD))"
	echo "- QEMU: $("$QEMU" --version | head -n 1), both hosts; accelerator $ACCEL; SeaBIOS guest, idle, 256 MiB"
	echo "- Machine: $(nproc) CPUs, kernel $(uname -r); hosts are two network namespaces on it joined by a veth pair"
	echo "- Disk: qcow2 overlay on a raw base of $BASE_MIB MiB (all data); the overlay holds $OVERLAY_MIB MiB in 8 MiB pieces over the disk. A's files on $(df --output=source "$WORK" | tail -n 1); B's in tmpfs. For --copy-storage-inc the base is copied to B first (not timed)"
	echo "- Transport: QEMU's migration and the disk copy over ${QU_ARGS:+plain TCP (}${QU_ARGS:-TLS (the default}); strategy $(jq -r .strategy <<<"$rep") (TCG before 9.0: the guest stops for the RAM copy, after the disk mirrors are in step)"
	echo "- Times include the plan (for --copy-storage-inc: both hosts read and sum the base, at once)"
	echo
	echo "Median of $RUNS runs, min–max in parentheses."
	echo
	echo "| metric | --copy-storage-inc | --copy-storage (collapsed) |"
	echo "| --- | --- | --- |"
	echo "| total time (ms) | $(row copy-storage-inc 2 1) | $(row copy-storage 2 1) |"
	echo "| guest pause (ms) | $(row copy-storage-inc 3 1) | $(row copy-storage 3 1) |"
	echo "| disk_copied_bytes (MiB) | $(row copy-storage-inc 4 1048576) | $(row copy-storage 4 1048576) |"
} >"$OUT"
cat "$OUT"
