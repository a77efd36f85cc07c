#!/usr/bin/env bash
# qemu-upgrade standby: what a client on the network sees of a failover (issue 16: "SIGKILL
# the primary QEMU: ... pings from a third namespace continue after a short gap, the announce
# is captured"). Two "hosts" (network namespaces joined by a routed veth, the TLS agent on B)
# and a third namespace C, the client, on one L2 segment with the guest's tap on A and the tap
# of the same name on B, as a real site has it: on A and on B the tap in a bridge with a veth
# leading to C, in C a bridge over both veths with the client's address; the hosts have none
# on that segment (client_segment in tests/lib/standby.sh). Real QEMU 11.1.3 under TCG, the
# memory-checking guest with one virtio-net NIC, checkpoints every 500 ms.
# 1. Protected: pings from C answer through colo-compare on A; the guest is clean. (B's tap
#    is on the segment too, so the secondary's guest also gets, straight from its tap, every
#    frame C's bridge floods: ARP broadcasts; filter-redirector with only an indev passes its
#    netdev's own packets on to the guest. A cost in checkpoints, nothing broken: measured in
#    docs/standby.md, "What the guest observes".)
# 2. A continuous ping from C (every 0.1 s, each reply timestamped) and a capture on C's
#    bridge of the guest MAC's announce; SIGKILL of the primary QEMU: B runs the guest, the
#    announce (RARP) reaches C, C's replies resume (10 in a row at least, none duplicated)
#    within a generous bound (60 s; the gap is reported, not asserted: the issue says "within
#    seconds" and this host is loaded), the guest on B clean with no rewind past the last
#    checkpoint, and A's state failed-over (dated after the kill). Measured (13 runs, 2-CPU
#    host, 256 MiB, 500 ms checkpoints, 2 runs with both CPUs kept busy): replies resumed
#    0.11-0.47 s after the last before the kill, 0-3 pings lost, the first RARP at C 0.06-0.15 s
#    after the kill (docs/standby.md, "Failover and fencing").
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"
. "$here/../lib/standby.sh"

standby_qemu
command -v tcpdump >/dev/null || { echo "Bail out! tcpdump is missing (tests/install-deps.sh installs it)"; exit 1; }

tap_plan 9
standby_hosts
client_segment 192.168.88.2/24 || { echo "Bail out! cannot make the client's namespace and its segment"; exit 1; }
HB=12000
GUEST=192.168.88.10 MAC=52:54:00:12:88:10

# 1. Protected, seen from the client.
protected_vm sbc 192.168.88.10 "$MAC" 4788 "$CLIENT_HOST_BR"
tap_ok $? "protected with both taps on the client's segment, checkpoints flowing (the secondary PID ${SEC:-none} on B)"
primary=$VM_PID a_serial=$VM_SERIAL
b_serial=/proc/$SEC/root$VM_DIR/serial.log b_qmp=/proc/$SEC/root$MON/test.sock
p=$(ping_from "$REMOTE_NS_C" 10 "$GUEST")
tap_diag "pings from C while protected: $p; C's bridge: $(ip -n "$REMOTE_NS_C" -br link show master "$CLIENT_BR" | awk '{print $1}' | tr '\n' ' ')"
[ "${p%/*}" -ge 8 ]
tap_ok $? "the client's pings answer through colo-compare on A ($p)"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the protected guest checks its memory on, clean ($(vm_memcheck_status))"

# 2. The client watches a SIGKILL of the primary.
plog=$VM_DIR/client-ping.log announce=$VM_DIR/client-announce
ip netns exec "$REMOTE_NS_C" tcpdump -l -n -tt -e -i "$CLIENT_BR" "ether src $MAC and (ether proto 0x8035 or arp)" \
	>"$announce" 2>"$VM_DIR/client-tcpdump.err" &
dump=$!
vm_track_pid "$dump"
wait_for 30 "tcpdump to listen on C's bridge" grep -q "listening on" "$VM_DIR/client-tcpdump.err"
client_ping_start "$GUEST" "$plog"
replies() { [ "$(grep -c ' bytes from ' "$plog")" -ge "$1" ]; }
wait_for 60 "10 replies to the client's continuous ping" replies 10
# A pass the primary's guest had finished before two more checkpoints were taken: the last
# checkpoint before the kill holds at least that pass (standby-failover.t).
pass_checkpointed=$(pass_of "$a_serial")
c0=$(checkpoints "$primary")
wait_for 60 "two more checkpoints" at_least_checkpoints "$primary" $((${c0:-0} + 2))
c1=$(checkpoints "$primary")
t0=$(date +%s.%N)
kill -KILL "$primary"
b_runs() { out_of_colo_running "$b_qmp"; }
wait_for 60 "the secondary to run the guest" b_runs
rc=$?
t1=$(date +%s.%N)
[ "$rc" = 0 ] || takeover_diag "$primary" "$SEC" "$b_qmp"
tap_diag "kill to running on B: $(echo "$t1 - $t0" | bc) s (checkpoints before the kill: $c1)"
[ "$rc" = 0 ] && proc_gone_soon "$primary" 30
tap_ok $? "SIGKILL of the primary: the secondary runs the guest (out of COLO, running on B)"
resumed() { [ "$(summary_field "$(ping_log_summary "$plog" "$t0")" run)" -ge 10 ]; }
wait_for 60 "10 consecutive replies to the client after the kill" resumed
rc=$?
kill -INT "$CLIENT_PING" "$dump" 2>/dev/null
wait "$CLIENT_PING" "$dump" 2>/dev/null
sum=$(ping_log_summary "$plog" "$t0")
gap=$(summary_field "$sum" gap) lost=$(summary_field "$sum" lost)
first_after=$(summary_field "$sum" first_after)
tap_diag "client's ping log: $sum"
tap_diag "gap seen by the client: ${gap:-none} s (last reply before the kill to the first after), $lost pings lost; first reply $(echo "${first_after:-0} - $t0" | bc) s after the kill"
[ "$rc" = 0 ] && [ "$(summary_field "$sum" before)" -ge 10 ] && [ "$(summary_field "$sum" dups)" = 0 ] &&
	[ -n "$gap" ] && [ "$(echo "$gap < 60" | bc)" = 1 ]
tap_ok $? "the client's pings continue after a gap of ${gap:-none} s ($lost lost), then $(summary_field "$sum" run) in a row answered, none twice"
rarp=$(awk -v t0="$t0" '$1 >= t0 && /Reverse/' "$announce")
garp=$(awk -v t0="$t0" '$1 >= t0 && /ARP/ && !/Reverse/' "$announce")
first_rarp=$(awk '{ print $1; exit }' <<<"$rarp")
fdb=$(bridge -n "$REMOTE_NS_C" fdb show br "$CLIENT_BR" | grep -i "^$MAC " | head -n 1)
tap_diag "at C after the kill: $(grep -c . <<<"$rarp") RARP from the guest's MAC, the first ${first_rarp:+$(echo "$first_rarp - $t0" | bc) s after the kill}; $(grep -c . <<<"$garp") ARP (first: $(head -n 1 <<<"$garp" | cut -d' ' -f 2-)); C's bridge: $fdb"
tap_diag "RARP at C, seconds after the kill: $(awk -v t0="$t0" '{ printf "%.3f ", $1 - t0 }' <<<"$rarp")"
[ -n "$rarp" ] && grep -q " dev qccb$$ " <<<"$fdb"
tap_ok $? "the guest's MAC was announced to the client (RARP captured on C's bridge, which now sends the guest's frames towards B)"
n0=$(pass_lines "$b_serial")
wait_for 120 "two memcheck passes on B" more_passes "$b_serial" "$n0" 2
rc=$?
tap_diag "B's memcheck: $(grep -a 'MEMCHECK pass=' "$b_serial" | tail -n 1 | tr -d '\r'), corrupt lines $(corrupt_of "$b_serial")"
memcheck_diag "$b_serial"
[ "$rc" = 0 ] && [ "$(errors_of "$b_serial")" = 0 ] && [ "$(corrupt_of "$b_serial")" = 0 ]
tap_ok $? "the guest on B checks its memory on, clean ($(pass_of "$b_serial"))"
b0=$(pass_after "$b_serial" "$n0")
[ "${b0:-0}" -gt "${pass_checkpointed:-0}" ]
tap_ok $? "no rewind past the last checkpoint: B's first pass after the takeover is $b0; the primary had finished pass $pass_checkpointed two checkpoints before the kill"
standby status --pid "$primary" --json
t2=$(date +%s.%N)
fo=$(jq -r '.failed_over_us // 0' <<<"$OUT")
tap_diag "A's status: $OUT"
tap_diag "failed_over_us: $(echo "scale=3; $fo / 1000000 - $t0" | bc) s after the kill"
# failed_over_us is the secondary's RESUME as it took over (or when its agent saw it run): after
# the kill. It once was the oldest RESUME queued on the secondary's monitor, of COLO's start
# (12 s before the kill in this test's first run).
[ "$(jq -r .state <<<"$OUT")" = failed-over ] && jq -r .reason <<<"$OUT" | grep -q "the guest runs on $REMOTE_B_IP:4788 in PID $SEC" &&
	[ "$(echo "$fo >= $t0 * 1000000 && $fo <= $t2 * 1000000" | bc)" = 1 ]
tap_ok $? "A's state: failed-over, naming the secondary, dated after the kill"
tap_done
