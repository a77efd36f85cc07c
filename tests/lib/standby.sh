# standby.sh: what the standby tests share (tests/e2e/standby*.t). Source after remote.sh.

# Every agent a standby test starts may hold standbys (agent_standby), unless a test says no.
REMOTE_AGENT_STANDBY=yes

# standby_qemu: QEMU 11.1 from Debian sid (tests/qemu-versions/fetch.sh, cached in
# /var/cache/qemu-upgrade-tests) in Q11; without it the test is skipped, since COLO works on
# no other version (docs/standby-research.md).
standby_qemu() {
	local cache=/var/cache/qemu-upgrade-tests
	mkdir -p "$cache"
	Q11=$( (flock 9; "$QU_ROOT/tests/qemu-versions/fetch.sh" sid "$cache") 9>"$cache/.lock" 2>"$cache/.fetch-sid.err" | tail -n 1)
	[ -x "$Q11" ] || {
		echo "1..0 # SKIP QEMU 11.1 (Debian sid) cannot be fetched, and COLO works on no other version: $(tail -n 1 "$cache/.fetch-sid.err")"
		exit 0
	}
}

# standby_hosts: the two hosts (remote_hosts), the guest built, and a state directory of the
# test's own in QEMU_UPGRADE_STATE_DIR (removed at exit); bails out when they cannot be made.
standby_hosts() {
	remote_hosts || { echo "Bail out! cannot create the two network namespaces"; exit 1; }
	vm_guest_build || exit 1
	export QEMU_UPGRADE_STATE_DIR=$(mktemp -d /tmp/qu-standby-state.XXXXXX)
	_vm_paths+=("$QEMU_UPGRADE_STATE_DIR")
}

# standby ARGS...: `qemu-upgrade standby ARGS` on host A (or where STANDBY_WRAP, a command
# prefix, runs it); OUT gets its stdout, ERR its stderr (kept in VM_DIR/standby.err); returns
# its exit status.
standby() {
	local rc
	OUT=$(${STANDBY_WRAP:-ip netns exec $REMOTE_NS_A} "$QU_BIN" standby "$@" 2>"$VM_DIR/standby.err")
	rc=$?
	ERR=$(cat "$VM_DIR/standby.err")
	return $rc
}

# standby_logs PID [SUPERVISOR_LOG [AGENT_LOG]]: the last lines of the supervisor's log (of the
# primary PID, by default in this host's QEMU_UPGRADE_STATE_DIR) and of the agent's (by default
# REMOTE_AGENT_LOG), for a failing step to say what the two sides did: the end of each, which
# survives the cut of CI's output (tests/run/failures.sh cuts lines at 700 characters).
standby_logs() {
	tap_diag "the supervisor's log: ...$(tail -n 15 "${2:-$QEMU_UPGRADE_STATE_DIR/standby-$1.log}" 2>&1 | tr '\n' '|' | tail -c 620)"
	tap_diag "the agent's log: ...$(tail -n 15 "${3:-$REMOTE_AGENT_LOG}" 2>&1 | tr '\n' '|' | tail -c 620)"
}

# takeover_diag PRIMARY SECONDARY QMP [SUPERVISOR_LOG [AGENT_LOG]]: what a takeover that did not
# come left behind: both sides' logs (standby_logs) and the secondary QEMU (PID SECONDARY, its
# monitor QMP): alive or not, its COLO state, its run state. The agent logs how a QEMU it
# adopted ended, so a secondary that died says so there.
takeover_diag() {
	standby_logs "$1" "${4:-}" "${5:-}"
	tap_diag "the secondary QEMU (PID $2): $(kill -0 "$2" 2>&1 && echo alive), COLO $(vm_qmp "$3" '{"execute":"query-colo-status"}' 2>&1 | tr '\n' ' '), run state $(vm_runstate "$3" 2>&1)"
}
# kill_for_takeover PRIMARY SECONDARY QMP SERIAL SUPERVISOR_LOG: two more checkpoints of the
# protected PRIMARY, its SIGKILL, then the SECONDARY (its monitor QMP, its guest's console
# SERIAL) out of COLO and running within 60 s, and two memcheck passes there within 120 s;
# what a failing step saw is said (takeover_diag, memcheck_diag). 0 when both came.
kill_for_takeover() {
	local primary=$1 sec=$2 qmp=$3 serial=$4 sup_log=$5 c0 n0 rc
	c0=$(checkpoints "$primary")
	wait_for 60 "two more checkpoints" at_least_checkpoints "$primary" $((${c0:-0} + 2))
	kill -KILL "$primary"
	wait_for 60 "the secondary to run the guest" out_of_colo_running "$qmp"
	rc=$?
	[ "$rc" = 0 ] || takeover_diag "$primary" "$sec" "$qmp" "$sup_log"
	n0=$(pass_lines "$serial")
	[ "$rc" = 0 ] && wait_for 120 "two memcheck passes on the secondary" more_passes "$serial" "$n0" 2
	rc=$?
	memcheck_diag "$serial"
	return "$rc"
}
# secondary_of OUT: the secondary's PID that `standby start` printed in OUT.
secondary_of() { sed -n 's/^protected: PID [0-9]*, secondary PID \([0-9]*\) on .*/\1/p' <<<"$1"; }
pass_of() { grep -a 'MEMCHECK pass=' "$1" 2>/dev/null | tail -n 1 | sed -n 's/.* pass=\([0-9]*\).*/\1/p'; }
errors_of() { grep -a 'MEMCHECK pass=' "$1" 2>/dev/null | tail -n 1 | sed -n 's/.* errors=\([0-9]*\).*/\1/p'; }
pass_lines() { grep -ac 'MEMCHECK pass=' "$1" 2>/dev/null; }
# pass_after LOG N: the pass number of the first MEMCHECK line after the first N of them: what a
# guest printed after a moment at which N lines were there (a takeover seen). The last line at
# that moment says nothing: a COLO secondary's log holds what it printed between checkpoints,
# which each checkpoint then replaced.
pass_after() { grep -a 'MEMCHECK pass=' "$1" 2>/dev/null | tail -n +$(($2 + 1)) | head -n 1 | sed -n 's/.* pass=\([0-9]*\).*/\1/p'; }
# more_passes LOG N K: at least K MEMCHECK lines after the first N.
more_passes() { local n; n=$(pass_lines "$1"); [ "${n:-0}" -ge $(($2 + $3)) ]; }
corrupt_of() { grep -ac 'MEMCHECK CORRUPT' "$1" 2>/dev/null; }
# memcheck_diag LOG: where a guest's checker first saw corruption in LOG: the first status line
# with errors, its place among all of them, the first CORRUPT lines (page, word, the value
# expected and the one found), and what each wrong value is (tests/colo-probe/memcheck-decode.py:
# a stale copy of the page, another page's content, a generation ahead of the guest's), for a
# failing step to say when and what went wrong.
memcheck_diag() {
	local first corrupt
	first=$(grep -an 'MEMCHECK pass=.* errors=[1-9]' "$1" 2>/dev/null | head -n 1 | tr -d '\r')
	corrupt=$(grep -a 'MEMCHECK CORRUPT' "$1" 2>/dev/null | head -n 4 | tr -d '\r')
	[ -n "$first$corrupt" ] || return 0
	tap_diag "$1: first line with errors: ${first:-none} (of $(grep -ac 'MEMCHECK' "$1") checker lines); first corrupt words: $(tr '\n' '|' <<<"$corrupt")"
	tap_diag "the values found: $("$QU_ROOT/tests/colo-probe/memcheck-decode.py" "$1" 2>&1 | head -n 4 | tr '\n' '|')"
}
ping_from() { ip netns exec "$1" ping -c "$2" -i 0.2 -W 2 "$3" 2>&1 | sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\2\/\1/p'; }
# hmp QMP COMMAND: an HMP command through the monitor QMP.
hmp() { vm_qmp "$1" "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"$2\"}}"; }
# disk_write_protected QMP PID INTERVAL_MS BYTE OFFSET: writes 64 KiB of BYTE at OFFSET through
# the quorum colo-disk0 of the protected primary PID (its monitor QMP, `qemu-io`) between two
# checkpoints, never during one. QEMU 11.1.3's secondary aborts when a write reaches it while
# it empties its scratch images at a checkpoint ("Assertion `offset != 0' failed", "First
# cluster in emptied image is in use": docs/standby.md, "Disks"). A guest cannot write then
# (its VM is stopped); the monitor can, so the test holds checkpoints off for its write:
# x-checkpoint-delay 60 s (which takes one at once; one under way is then followed by one
# more, and nothing for 60 s), the supervisor's count past that and the run state `running`,
# both unchanged over three looks (its count is written every second), the write, the interval
# back (one more checkpoint at once, which carries the write). Prints what it saw; false when
# the write failed or the count moved during it.
disk_write_protected() {
	local qmp=$1 pid=$2 interval=$3 byte=$4 off=$5 c0 now last= st steady=0 r after i
	c0=$(checkpoints "$pid")
	vm_qmp "$qmp" '{"execute":"migrate-set-parameters","arguments":{"x-checkpoint-delay":60000}}' >/dev/null
	for i in $(seq 100); do
		now=$(checkpoints "$pid") st=$(vm_runstate "$qmp")
		if [ -n "$now" ] && [ "$now" -gt "${c0:-0}" ] && [ "$st" = running ] && [ "$now" = "$last" ]; then
			steady=$((steady + 1))
		else
			steady=0
		fi
		last=$now
		[ "$steady" -ge 3 ] && break
		sleep 0.4
	done
	r=$(hmp "$qmp" "qemu-io colo-disk0 \\\"write -P $byte $off 64k\\\"")
	after=$(checkpoints "$pid")
	vm_qmp "$qmp" "{\"execute\":\"migrate-set-parameters\",\"arguments\":{\"x-checkpoint-delay\":$interval}}" >/dev/null
	echo "checkpoints $c0 -> $last (steady over $steady looks after $i), $after after the write; qemu-io: $r"
	[ "$steady" -ge 3 ] && [ "$after" = "$last" ] && [ "$r" = '{"return": ""}' ]
}
checkpoints() { standby status --pid "$1" --json && jq -r .checkpoints <<<"$OUT"; }
at_least_checkpoints() { local c; c=$(checkpoints "$1"); [ "${c:-0}" -ge "$2" ]; }

# out_of_colo_running QMP: the QEMU behind the monitor QMP has left COLO (mode none) and runs
# (a COLO secondary runs its vCPUs between checkpoints too: this is what taking over means).
out_of_colo_running() {
	[ "$(vm_qmp "$1" '{"execute":"query-colo-status"}' 2>/dev/null | jq -r .return.mode)" = none ] &&
		[ "$(vm_runstate "$1" 2>/dev/null)" = running ]
}

# protected_vm NAME IP MAC PORT [BRIDGE]: a VM on A with a tap (and one of the same name on B), the
# agent on B (at PORT) allowed its directories, then protected with checkpoints every 500 ms
# and the heartbeat timeout HB; sets TAP, MON (the test's own monitor directory), SEC (the
# secondary's PID). Each host's tap gets the address IP.1/24, or with BRIDGE none: it goes
# into the bridge of that name on its host instead (client_segment's, a client's L2 segment).
protected_vm() {
	local name=$1 ip=$2 mac=$3 port=$4 bridge=${5:-} ns
	TAP=sf$port
	MON=$(mktemp -d /tmp/qu-sbf-mon.XXXXXX) && _vm_paths+=("$MON")
	QEMU=$Q11 VM_APPEND="net_ip=$ip/24" VM_WRAP="ip netns exec $REMOTE_NS_A" vm_start "$name" \
		-netdev "tap,id=hn0,ifname=$TAP,script=no,downscript=no,vhost=off,vnet_hdr=off" \
		-device "virtio-net-pci,id=net0,netdev=hn0,mac=$mac" -qmp "unix:$MON/test.sock,server=on,wait=off" ||
		{ echo "Bail out! VM $name did not start"; exit 1; }
	VM_QMP=$MON/test.sock
	for ns in "$REMOTE_NS_A" "$REMOTE_NS_B"; do
		[ "$ns" = "$REMOTE_NS_A" ] || ip -n "$ns" tuntap add dev "$TAP" mode tap || exit 1
		if [ -n "$bridge" ]; then
			ip -n "$ns" link set "$TAP" master "$bridge" && ip -n "$ns" link set "$TAP" up || exit 1
		else
			ip -n "$ns" addr add "${ip%.*}.1/24" dev "$TAP" && ip -n "$ns" link set "$TAP" up || exit 1
		fi
	done
	vm_wait_ready || { echo "Bail out! the guest of $name did not come up"; exit 1; }
	REMOTE_PORT=$port REMOTE_AGENT_BINARIES="$Q11" remote_agent_start "$VM_DIR" "$MON" ||
		{ echo "Bail out! the agent did not start"; exit 1; }
	dest=(--remote "$REMOTE_B_IP:$port" --pki-dir "$REMOTE_PKI_A")
	standby start --pid "$VM_PID" "${dest[@]}" --interval 500 --heartbeat-timeout "$HB"
	local rc=$?
	tap_diag "$name: start: exit $rc: $OUT $ERR"
	SEC=$(secondary_of "$OUT")
	[ "$rc" = 0 ] && [ -n "$SEC" ] && wait_for 120 "3 checkpoints" at_least_checkpoints "$VM_PID" 3
}

# host_a_back PORT HOST_IP: host A in service again after its QEMU died, for a failback: the
# tap TAP that A's QEMU made (and took with it) made again by "A's network setup", with
# HOST_IP/24; A's own TLS agent on PORT, with a certificate for A's address, letting in the
# tool on B by its own client certificate alone, a tmpfs over VM_DIR and MON as on B (nothing
# of the dead QEMU's files in the way). Sets AGENT_A (its PID) and PKI_TOOL_B (the tool's
# --pki-dir on B). Bails out on failure.
host_a_back() {
	local port=$1 ip=$2 pki_a
	ip -n "$REMOTE_NS_A" tuntap add dev "$TAP" mode tap && ip -n "$REMOTE_NS_A" addr add "$ip/24" dev "$TAP" &&
		ip -n "$REMOTE_NS_A" link set "$TAP" up || { echo "Bail out! cannot make $TAP on A again"; exit 1; }
	pki_a=$(mktemp -d) PKI_TOOL_B=$(mktemp -d) && _vm_paths+=("$pki_a" "$PKI_TOOL_B")
	cp "$REMOTE_CA/ca-cert.pem" "$pki_a/" && cp "$REMOTE_CA/ca-cert.pem" "$PKI_TOOL_B/" &&
		remote_cert "$REMOTE_CA" "$pki_a/server-cert.pem" "$pki_a/server-key.pem" agent-a.qu-test \
			"DNS:agent-a.qu-test,IP:$REMOTE_A_IP" &&
		remote_cert "$REMOTE_CA" "$PKI_TOOL_B/client-cert.pem" "$PKI_TOOL_B/client-key.pem" tool-b.qu-test \
			"DNS:tool-b.qu-test" || { echo "Bail out! cannot make the certificates for host A"; exit 1; }
	REMOTE_PORT=$port REMOTE_AGENT_BINARIES="$Q11" REMOTE_TLS_CLIENTS=tool-b.qu-test \
		remote_agent_start_in "$REMOTE_NS_A" "$REMOTE_A_IP" "$pki_a" "$VM_DIR" "$MON" ||
		{ echo "Bail out! the agent on A did not start"; exit 1; }
	AGENT_A=$REMOTE_AGENT
}

# client_segment CIDR: a third namespace, the client (REMOTE_NS_C), on one L2 segment with the
# guest's taps on A and B, as a real site has it: on A and on B a bridge (CLIENT_HOST_BR: the
# taps join it, protected_vm's BRIDGE) with a veth leading to C; in C a bridge (CLIENT_BR)
# over both veths, holding CIDR. The hosts keep no address on that segment, and their own
# link stays the routed veth remote_hosts made, in no bridge: C's bridge alone joins A's and
# B's, so the segment has no loop. STP is off, as on a site's access ports. Everything goes at
# exit: C's processes by PID, then the namespace (its veths, and their ends on A and B, with
# it); A's and B's bridges go with their namespaces.
client_segment() {
	local cidr=$1 h ns
	REMOTE_NS_C=qu-rc-$$ CLIENT_BR=qcbr$$ CLIENT_HOST_BR=qhbr$$
	ip netns add "$REMOTE_NS_C" || return 1
	vm_defer "client_kill_all; ip netns del $REMOTE_NS_C"
	ip -n "$REMOTE_NS_C" link set lo up &&
		ip -n "$REMOTE_NS_C" link add "$CLIENT_BR" type bridge stp_state 0 forward_delay 0 || return 1
	for h in a b; do
		ns=$REMOTE_NS_A
		[ "$h" = a ] || ns=$REMOTE_NS_B
		ip -n "$ns" link add "$CLIENT_HOST_BR" type bridge stp_state 0 forward_delay 0 &&
			ip link add "qc$h$$" netns "$ns" type veth peer name "qcc$h$$" netns "$REMOTE_NS_C" &&
			ip -n "$ns" link set "qc$h$$" master "$CLIENT_HOST_BR" &&
			ip -n "$REMOTE_NS_C" link set "qcc$h$$" master "$CLIENT_BR" &&
			ip -n "$ns" link set "qc$h$$" up && ip -n "$ns" link set "$CLIENT_HOST_BR" up &&
			ip -n "$REMOTE_NS_C" link set "qcc$h$$" up || return 1
	done
	ip -n "$REMOTE_NS_C" addr add "$cidr" dev "$CLIENT_BR" && ip -n "$REMOTE_NS_C" link set "$CLIENT_BR" up
}

# client_kill_all: every process left in the client's namespace (this test's own), by PID.
client_kill_all() {
	local p
	for p in $(ip netns pids "$REMOTE_NS_C" 2>/dev/null); do
		kill -KILL "$p" 2>/dev/null
	done
}

# client_ping_start IP LOG: a continuous ping from the client to IP, every 0.1 s, each reply
# and each ping still unanswered when the next leaves on a line of LOG with its time
# (`ping -D -O`); sets CLIENT_PING (its PID, tracked).
client_ping_start() {
	ip netns exec "$REMOTE_NS_C" ping -n -D -O -i 0.1 -W 1 "$1" >"$2" 2>&1 &
	CLIENT_PING=$!
	vm_track_pid "$CLIENT_PING"
}

# ping_log_summary LOG T0: what a client_ping_start log says about the moment T0 (seconds since
# the epoch, as `date +%s.%N` gives): "before=N after=N last_before=T last_before_seq=S
# first_after=T first_after_seq=S gap=SECONDS lost=N run=N dups=N sent=N": replies received
# before and after T0, the last before and the first after (time, icmp_seq), the time between
# them, the pings between those two that were never answered, the longest run of consecutive
# pings answered from the first after T0 on, duplicate replies (two guests answering), the
# highest icmp_seq sent. Empty fields when there is no such reply.
ping_log_summary() {
	awk -v t0="$2" '
	function seq_of(line) { match(line, /icmp_seq=[0-9]+/); return substr(line, RSTART + 9, RLENGTH - 9) + 0 }
	/icmp_seq=/ { s = seq_of($0); if (s > sent) sent = s }
	/ bytes from / {
		if ($0 ~ /DUP!/) { dups++; next }
		ts = substr($1, 2, length($1) - 2) + 0
		ans[s] = ts
		if (ts < t0) { before++; if (ts > lb) { lb = ts; lbs = s } }
		else { after++; if (fa == "" || ts < fa) { fa = ts; fas = s } }
	}
	END {
		if (fa != "") {
			for (s = lbs + 1; s < fas; s++) if (!(s in ans)) lost++
			for (s = fas; s <= sent; s++) if (s in ans) { if (++r > run) run = r } else r = 0
		}
		printf "before=%d after=%d last_before=%s last_before_seq=%s first_after=%s first_after_seq=%s gap=%s lost=%s run=%d dups=%d sent=%d\n",
			before, after, lb == "" ? "" : sprintf("%.3f", lb), lbs, fa == "" ? "" : sprintf("%.3f", fa), fas,
			(fa == "" || lb == "") ? "" : sprintf("%.3f", fa - lb), fa == "" ? "" : lost + 0, run, dups, sent
	}' "$1"
}

# summary_field SUMMARY NAME: one field of a ping_log_summary line.
summary_field() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1"; }
