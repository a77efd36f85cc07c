#!/usr/bin/env bash
# qemu-upgrade standby: failback with a disk (issue 16, item 5), on two "hosts" (network
# namespaces joined by a veth), real QEMU 11.1.3 under TCG, the memory-checking guest with a
# virtio-net NIC on a tap and an IDE disk under a quorum node.
# 1. A protects the VM towards B with its disk; a write through A's quorum; A's QEMU is
#    SIGKILLed and B runs the guest on the secondary's graph (quorum over a replication node
#    whose failover is done, over B's copy of the image).
# 2. Host A is back (its own TLS agent); the tool on B protects the guest towards A: A's new
#    secondary gets the secondary's graph again over a copy of B's image at the same path,
#    B's quorum gets a primary replication child beside its old child. `standby stop` puts B's
#    graph back as it was and leaves nothing on A; so does --recover after the supervisor's
#    SIGKILL; B is protected again.
# 3. A write through B's quorum while protected; B's QEMU SIGKILLed: A runs the guest on,
#    clean, and A's image holds both writes.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"
. "$here/../lib/standby.sh"

standby_qemu

tap_plan 12
standby_hosts
HB=12000
hmp() { vm_qmp "$1" "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"$2\"}}"; }
nodes() { vm_qmp "$1" '{"execute":"query-named-block-nodes","arguments":{"flat":true}}' | jq -c '[.return[] | "\(.["node-name"]):\(.drv):\(.file)"]'; }
children() { vm_qmp "$1" '{"execute":"query-block"}' | jq -c '[.return[] | select(.device == "colo-disk0") | .inserted.children[] | "\(.child)=\(.["node-name"])"]'; }
# img_has IMAGE BYTE OFFSET: the 64 KiB at OFFSET of a qcow2 image hold BYTE.
img_has() { qemu-io -U -r -f qcow2 -c "read -P $2 $3 64k" "$1" 2>&1 | grep -q '^read 65536/65536'; }

# 1. A protects the VM with its disk towards B; a write on A; A's QEMU dies; B takes over.
TAP=sd4786
MON=$(mktemp -d /tmp/qu-sbdf-mon.XXXXXX) && _vm_paths+=("$MON")
IMG=$MON/primary.qcow2
qemu-img create -q -f qcow2 "$IMG" 64M || exit 1
QEMU=$Q11 VM_APPEND="net_ip=192.168.83.10/24" VM_WRAP="ip netns exec $REMOTE_NS_A" vm_start sbdf \
	-netdev "tap,id=hn0,ifname=$TAP,script=no,downscript=no,vhost=off,vnet_hdr=off" \
	-device "virtio-net-pci,id=net0,netdev=hn0,mac=52:54:00:12:83:10" \
	-drive "if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0.file.filename=$IMG,children.0.driver=qcow2" \
	-qmp "unix:$MON/test.sock,server=on,wait=off" || { echo "Bail out! the VM did not start"; exit 1; }
VM_QMP=$MON/test.sock
for ns in "$REMOTE_NS_A" "$REMOTE_NS_B"; do
	[ "$ns" = "$REMOTE_NS_A" ] || ip -n "$ns" tuntap add dev "$TAP" mode tap || exit 1
	ip -n "$ns" addr add 192.168.83.1/24 dev "$TAP" && ip -n "$ns" link set "$TAP" up || exit 1
done
vm_wait_ready || { echo "Bail out! the guest did not come up"; exit 1; }
REMOTE_PORT=4786 REMOTE_AGENT_BINARIES="$Q11" remote_agent_start "$VM_DIR" "$MON" ||
	{ echo "Bail out! the agent on B did not start"; exit 1; }
standby start --pid "$VM_PID" --remote "$REMOTE_B_IP:4786" --pki-dir "$REMOTE_PKI_A" --interval 500 --heartbeat-timeout "$HB"
rc=$?
tap_diag "A -> B: start: exit $rc: $OUT $(tail -n 5 <<<"$ERR")"
SEC=$(secondary_of "$OUT")
[ "$rc" = 0 ] && [ -n "$SEC" ] && wait_for 120 "3 checkpoints A -> B" at_least_checkpoints "$VM_PID" 3
tap_ok $? "A -> B with the disk: protected, checkpoints flowing (the secondary PID ${SEC:-none} on B)"
primary=$VM_PID agent_b=$REMOTE_AGENT
on_b=$SEC b_serial=/proc/$SEC/root$VM_DIR/serial.log b_qmp=/proc/$SEC/root$MON/test.sock b_img=/proc/$SEC/root$IMG
hmp "$VM_QMP" 'qemu-io colo-disk0 \"write -P 0x5a 1M 64k\"' >/dev/null
c0=$(checkpoints "$primary")
wait_for 60 "two more checkpoints" at_least_checkpoints "$primary" $((${c0:-0} + 2))
kill -KILL "$primary"
wait_for 60 "B's secondary to run the guest" out_of_colo_running "$b_qmp"
rc=$?
[ "$rc" = 0 ] || takeover_diag "$primary" "$on_b" "$b_qmp"
tap_diag "B's graph after the takeover: $(nodes "$b_qmp") quorum children $(children "$b_qmp")"
hmp "$b_qmp" 'qemu-io colo-disk0 flush' >/dev/null
[ "$rc" = 0 ] && wait_for 30 "A's write in B's image" img_has "$b_img" 0x5a 1M
tap_ok $? "A's QEMU SIGKILLed: B runs the guest, A's write in B's image"

# 2. Host A back in service (as in standby-failback.t): its tap, its own agent.
host_a_back 4787 192.168.83.1
agent_a=$AGENT_A pki_tool_b=$PKI_TOOL_B
STANDBY_WRAP="nsenter -t $agent_b -m -n"
standby start --pid "$on_b" --remote "$REMOTE_A_IP:4787" --pki-dir "$pki_tool_b" --dry-run
tap_diag "B -> A: the plan: $OUT $ERR"
b_graph=$(nodes "$b_qmp") b_kids=$(children "$b_qmp")
standby start --pid "$on_b" --remote "$REMOTE_A_IP:4787" --pki-dir "$pki_tool_b" --interval 500 --heartbeat-timeout "$HB"
rc=$?
tap_diag "B -> A: start: exit $rc: $OUT $(tail -n 5 <<<"$ERR")"
[ "$rc" = 0 ] || tap_diag "supervisor log: $(tail -n 15 "/proc/$agent_b/root$QEMU_UPGRADE_STATE_DIR/standby-$on_b.log" "$QEMU_UPGRADE_STATE_DIR/standby-$on_b.log" 2>/dev/null | tr '\n' '|')"
SEC=$(secondary_of "$OUT")
[ "$rc" = 0 ] && [ -n "$SEC" ] && [ "$(ip netns identify "$SEC")" = "$REMOTE_NS_A" ] &&
	wait_for 120 "3 checkpoints B -> A" at_least_checkpoints "$on_b" 3
tap_ok $? "failback: the guest on B is protected towards A with its disk (the secondary PID ${SEC:-none} on A)"
on_a=$SEC a_serial=/proc/$SEC/root$VM_DIR/serial.log a_qmp=/proc/$SEC/root$MON/test.sock a_img=/proc/$SEC/root$IMG
seccmd=$(tr '\0' '\n' <"/proc/$on_a/cmdline" 2>/dev/null | grep -A1 -x -- -drive | grep -v -x -- '-drive\|--')
tap_diag "A's secondary's drives: $(tr '\n' '|' <<<"$seccmd")"
[ "$(grep -c . <<<"$seccmd")" = 3 ] && grep -q "^if=none,id=qu-colo-parent,driver=qcow2,file.filename=$IMG$" <<<"$seccmd" &&
	grep -q "^if=none,id=qu-colo-childs,driver=replication,mode=secondary,top-id=colo-disk0,.*file.backing.backing=qu-colo-parent$" <<<"$seccmd" &&
	grep -q "^if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0=qu-colo-childs$" <<<"$seccmd"
tap_ok $? "A's secondary: the secondary's graph again (parent on A's copy of the image, replication, quorum)"
kids=$(children "$b_qmp" | jq -c sort)
tap_diag "B's quorum children while protected: $kids (before: $b_kids)"
grep -q '^\["children.0=#block[0-9]*","children.1=qu-colo-replication"\]$' <<<"$kids" && [ "${kids%%,*}" = "${b_kids%]}" ]
tap_ok $? "B's quorum: its old child and the primary's replication child beside it"

# `standby stop` on B: B's graph as it was after the takeover, nothing left on A; then again.
standby stop --pid "$on_b"
rc=$?
after=$(nodes "$b_qmp") after_kids=$(children "$b_qmp")
gone() { [ ! -e "/proc/$on_a" ] && [ ! -e "/proc/$agent_a/root$IMG" ]; }
wait_for 30 "A to drop the secondary and its image" gone
tap_diag "stop: exit $rc: $OUT; B's nodes after: $after; children $after_kids"
[ "$rc" = 0 ] && [ "$after" = "$b_graph" ] && [ "$after_kids" = "$b_kids" ] && gone && [ "$(vm_runstate "$b_qmp")" = running ]
tap_ok $? "standby stop on B: its block graph as after the takeover, it runs; A has no QEMU and no copy of the image"
# protect_b_to_a WHAT: B -> A once more; sets SEC.
protect_b_to_a() {
	standby start --pid "$on_b" --remote "$REMOTE_A_IP:4787" --pki-dir "$pki_tool_b" --interval 500 --heartbeat-timeout "$HB"
	local rc=$?
	tap_diag "B -> A $1: start: exit $rc: $OUT $(tail -n 5 <<<"$ERR")"
	SEC=$(secondary_of "$OUT")
	[ "$rc" = 0 ] && [ -n "$SEC" ] && wait_for 120 "3 checkpoints B -> A" at_least_checkpoints "$on_b" 3
}

# The supervisor on B SIGKILLed: --recover on B puts its graph back as after the takeover.
protect_b_to_a again
rc=$?
standby status --pid "$on_b" --json
sup=$(jq -r .supervisor_pid <<<"$OUT") sec=$SEC
[ "$rc" = 0 ] && kill -KILL "$sup"
sec_gone() { ! kill -0 "$sec" 2>/dev/null; }
wait_for 30 "A's agent to stop the secondary" sec_gone
rec=$($STANDBY_WRAP "$QU_BIN" --recover 2>&1)
rc2=$?
after=$(nodes "$b_qmp") after_kids=$(children "$b_qmp")
tap_diag "--recover on B: exit $rc2: $rec; children after $after_kids"
[ "$rc" = 0 ] && [ "$rc2" = 0 ] && grep -q "PID $on_b: its standby supervisor (PID $sup) was gone: protection ended" <<<"$rec" &&
	[ "$after" = "$b_graph" ] && [ "$after_kids" = "$b_kids" ] && [ "$(vm_runstate "$b_qmp")" = running ]
tap_ok $? "B protected again, its supervisor SIGKILLed: --recover leaves B's block graph as after the takeover, it runs"
protect_b_to_a "a third time"
tap_ok $? "B protected towards A a third time (the secondary PID ${SEC:-none} on A)"
on_a=$SEC a_serial=/proc/$SEC/root$VM_DIR/serial.log a_qmp=/proc/$SEC/root$MON/test.sock a_img=/proc/$SEC/root$IMG

# 3. A write through B's quorum while protected; B's QEMU dies; A runs the guest with both writes.
r=$(hmp "$b_qmp" 'qemu-io colo-disk0 \"write -P 0xa5 2M 64k\"')
tap_diag "qemu-io on B: $r"
c0=$(checkpoints "$on_b")
wait_for 60 "two more checkpoints" at_least_checkpoints "$on_b" $((${c0:-0} + 2))
pass_checkpointed=$(pass_of "$b_serial")
kill -KILL "$on_b"
wait_for 60 "A's secondary to run the guest" out_of_colo_running "$a_qmp"
rc=$?
[ "$rc" = 0 ] || takeover_diag "$on_b" "$on_a" "$a_qmp" "/proc/$agent_b/root$QEMU_UPGRADE_STATE_DIR/standby-$on_b.log"
tap_ok $rc "B's QEMU SIGKILLed: A runs the guest"
hmp "$a_qmp" 'qemu-io colo-disk0 flush' >/dev/null
wait_for 30 "B's write in A's image" img_has "$a_img" 0xa5 2M
rc=$?
tap_diag "A's image: $(qemu-io -U -r -f qcow2 -c 'read -P 0xa5 2M 64k' "$a_img" 2>&1 | head -n 1) / $(qemu-io -U -r -f qcow2 -c 'read -P 0x5a 1M 64k' "$a_img" 2>&1 | head -n 1)"
[ "$rc" = 0 ] && img_has "$a_img" 0x5a 1M
tap_ok $? "the write made on B while protected is in A's image, and so is A's first one"
n0=$(pass_lines "$a_serial")
wait_for 120 "two memcheck passes on A" more_passes "$a_serial" "$n0" 2
rc=$?
a0=$(pass_after "$a_serial" "$n0")
tap_diag "A's memcheck: $(grep -a 'MEMCHECK pass=' "$a_serial" | tail -n 1 | tr -d '\r'); B had finished pass $pass_checkpointed"
ready=$(grep -ac 'MEMCHECK READY' "$a_serial")
memcheck_diag "$a_serial"
[ "$rc" = 0 ] && [ "$(errors_of "$a_serial")" = 0 ] && [ "$(corrupt_of "$a_serial")" = 0 ] &&
	[ "${a0:-0}" -ge "${pass_checkpointed:-0}" ] && [ "$ready" = 0 ]
tap_ok $? "the guest on A checks its memory on, clean, no rewind (pass $a0), never rebooted"
standby status --pid "$on_b" --json
tap_diag "B's status: $OUT"
[ "$(jq -r .state <<<"$OUT")" = failed-over ]
tap_ok $? "B's state: failed-over"
