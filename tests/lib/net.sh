# net.sh: a VM's network checked across an upgrade (source after vm.sh and tap.sh).

# _net_rx NS TAP: packets the host has received from the guest on TAP, inside NS.
_net_rx() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/rx_packets" 2>/dev/null || echo 0; }

# upgrade_pinging NS TAP NAME DIR IP [OPTION...]: one upgrade of the VM whose pidfile is
# DIR/qemu.pid, with qemu-upgrade's OPTIONs, while the host (in NS) pings the guest at IP every
# 10 ms through TAP: the guest answers before, at most 3 of 300 pings go unanswered beyond one
# per 10 ms of the guest's pause, the upgrade succeeds (in a new process; with --keep-pid in
# the same one) and the new QEMU runs in the VM's network namespace. Four TAP results; the
# report is left in DIR/report.
# _net_lost_when PINGLOG T0 T1: which pings of a `ping -D -O` run went unanswered, and when
# they were sent, in ms from T0 (the upgrade's start; it ended at T1).
_net_lost_when() {
	awk -v t0="$2" -v t1="$3" '
		/no answer yet for icmp_seq=/ { ts = substr($1, 2, length($1) - 2); sub(/.*icmp_seq=/, ""); lost[$0 + 0] = ts }
		/bytes from .*icmp_seq=/ { for (i = 1; i <= NF; i++) if ($i ~ /^icmp_seq=/) { split($i, a, "="); delete lost[a[2] + 0] } }
		END {
			out = sprintf("upgrade took %.0f ms; lost (seq @ ms from its start):", (t1 - t0) * 1000)
			for (s in lost) out = out sprintf(" %d@%.0f", s, (lost[s] - t0) * 1000)
			print out
		}' "$1"
}

upgrade_pinging() {
	local ns=$1 tap=$2 name=$3 dir=$4 ip=$5 old new report lost sent pause rx0 end keep=
	shift 5
	[[ " $* " == *" --keep-pid "* ]] && keep=1
	old=$(cat "$dir/qemu.pid")
	ip netns exec "$ns" ping -c 3 -W 5 "$ip" >/dev/null
	tap_ok $? "$name: the guest answers pings before the upgrade"
	rx0=$(_net_rx "$ns" "$tap")
	ip netns exec "$ns" ping -i 0.01 -c 300 -D -O "$ip" >"$dir/ping" 2>&1 &
	local pinger=$!
	# Upgrade once the guest is answering this run of pings (20 replies on the tap).
	end=$((SECONDS + 10))
	while [ "$(_net_rx "$ns" "$tap")" -lt $((rx0 + 20)) ] && [ $SECONDS -lt $end ]; do sleep 0.05; done
	local t0 t1
	t0=$(date +%s.%N)
	report=$("$QU_BIN" --pid "$old" "$@" --json --quiet 2>"$dir/err")
	t1=$(date +%s.%N)
	echo "$report" >"$dir/report"
	wait "$pinger"
	new=$(cat "$dir/qemu.pid")
	vm_track_pid "$new" 2>/dev/null
	sent=$(sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\1/p' "$dir/ping")
	lost=$((sent - $(sed -n 's/^[0-9]* packets transmitted, \([0-9]*\) received.*/\1/p' "$dir/ping")))
	pause=$(json_get "$report" pause_ms)
	tap_diag "$name: $(json_get "$report" result), pause $pause ms, $lost of $sent pings lost $(cat "$dir/err")"
	[ "$(json_get "$report" result)" = upgraded ] && if [ -n "$keep" ]; then [ "$new" = "$old" ]; else [ "$new" != "$old" ]; fi
	tap_ok $? "$name: upgraded"
	# A ping every 10 ms: the pause explains one lost reply per 10 ms of it, and 3 more may go
	# at its edges (a loaded machine pauses longer: the bound follows what was measured).
	local whole=${pause%.*} allowed
	[[ $whole =~ ^[0-9]+$ ]] || whole=0
	allowed=$((3 + whole / 10))
	[ "$sent" = 300 ] && [ "$lost" -le "$allowed" ]
	tap_ok $? "$name: pings at 10 ms: $lost of 300 lost, at most 3 plus one per 10 ms of the $pause ms pause ($allowed)"
	[ "$lost" -le "$allowed" ] || tap_diag "$name: $(_net_lost_when "$dir/ping" "$t0" "$t1")"
	[ "$(readlink "/proc/$new/ns/net")" = "$(readlink "/proc/$old/ns/net" 2>/dev/null || ip netns exec "$ns" readlink /proc/self/ns/net)" ]
	tap_ok $? "$name: the new QEMU runs in the VM's network namespace"
}
