#!/usr/bin/env bash
# qemu-upgrade standby: failback with a disk (issue 16, item 5), on two "hosts" (network
# namespaces joined by a veth), real QEMU 11.1.3 under TCG, the memory-checking guest with a
# virtio-net NIC on a tap and an IDE disk under a quorum node.
# 1. A protects the VM towards B with its disk; a write through A's quorum; A's QEMU is
#    SIGKILLed and B runs the guest on the secondary's graph (quorum over a replication node
#    whose failover is done, over B's copy of the image), A's write in B's image.
# 2. Host A is back (its own TLS agent); the tool on B is asked to protect the guest towards A.
#    It refuses, as without a disk (standby-failback.t, docs/standby.md "Failback"): a QEMU
#    that took over as a COLO secondary gave corrupt guests when protected again. Nothing is
#    made on A; B's block graph and guest are as after the takeover.
# 3. The way back the refusal names, in one command: `standby start --renew` moves the guest
#    on B into a new QEMU by an in-place upgrade, whose command line has the VM's own drive
#    again (the quorum over B's image, the secondary's graph gone) and which never was a
#    secondary, then protects it B -> A with the disk: A's new secondary gets a copy of B's
#    image; a write through B's quorum; B's QEMU SIGKILLed: A runs the guest on, clean, never
#    rebooted, and A's image holds both writes. (standby-failback.t takes the same way in two
#    commands, the upgrade by hand.)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"
. "$here/../lib/standby.sh"

standby_qemu

tap_plan 9
standby_hosts
HB=12000
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
tap_diag "a write on A: $(disk_write_protected "$VM_QMP" "$VM_PID" 500 0x5a 1M)"
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

# 2. Host A back in service (as in standby-failback.t), its own agent; the failback is refused.
host_a_back 4787 192.168.83.1
agent_a=$AGENT_A pki_tool_b=$PKI_TOOL_B
STANDBY_WRAP="nsenter -t $agent_b -m -n"
b_graph=$(nodes "$b_qmp") b_kids=$(children "$b_qmp")
standby start --pid "$on_b" --remote "$REMOTE_A_IP:4787" --pki-dir "$pki_tool_b" --interval 500 --heartbeat-timeout "$HB"
rc=$?
tap_diag "B -> A: start: exit $rc: $(grep -a '^  - ' <<<"$OUT$ERR" | tr '\n' '|')"
[ "$rc" = 3 ] && grep -qF "this QEMU took over the guest as a COLO secondary (query-colo-status: last-mode secondary)" <<<"$OUT$ERR" &&
	remote_no_qemu "$REMOTE_NS_A" && [ ! -e "/proc/$agent_a/root$IMG" ]
tap_ok $? "failback with the disk: refused (exit 3), the reason named; A holds no QEMU and no copy of the image"
b0=$(pass_of "$b_serial")
b_progress() { local p; p=$(pass_of "$b_serial"); [ "${p:-0}" -ge $((${b0:-0} + 2)) ]; }
wait_for 120 "two memcheck passes on B" b_progress
rc=$?
memcheck_diag "$b_serial"
after=$(nodes "$b_qmp") after_kids=$(children "$b_qmp")
tap_diag "B's graph after the refusal: $after_kids (before: $b_kids)"
[ "$rc" = 0 ] && [ "$after" = "$b_graph" ] && [ "$after_kids" = "$b_kids" ] && [ "$(vm_runstate "$b_qmp")" = running ] &&
	[ "$(errors_of "$b_serial")" = 0 ] && [ "$(corrupt_of "$b_serial")" = 0 ]
tap_ok $? "B's block graph as after the takeover, its guest running on, clean (pass $b0 -> $(pass_of "$b_serial"))"

# 3. The way back in one command: `standby start --renew` (its plan first) moves the guest on B
# into a new QEMU by an in-place upgrade, then protects the new process towards A.
grep -qF "standby start --renew" <<<"$OUT$ERR" && grep -qF "qemu-upgrade --pid $on_b --allow-copy" <<<"$OUT$ERR"
tap_ok $? "the refusal names --renew and the in-place upgrade that give the guest a new QEMU"
standby start --pid "$on_b" --remote "$REMOTE_A_IP:4787" --pki-dir "$pki_tool_b" --dry-run --renew
rc=$?
tap_diag "B -> A, --renew: the plan: exit $rc: $(grep -a '^first:\|^result:\|^  - ' <<<"$OUT" | tr '\n' '|')"
[ "$rc" = 0 ] && grep -q "^first: *this QEMU took over as a COLO secondary: the guest moves into a new QEMU process here" <<<"$OUT" &&
	grep -q "^result: *planned" <<<"$OUT" && [ "$(vm_runstate "$b_qmp")" = running ] && remote_no_qemu "$REMOTE_NS_A"
plan_rc=$?
# A blocker is said before the guest is moved: no agent at that port.
standby start --pid "$on_b" --remote "$REMOTE_A_IP:4799" --pki-dir "$pki_tool_b" --interval 500 --heartbeat-timeout "$HB" --renew
rc=$?
tap_diag "B -> A, --renew, no agent there: exit $rc: $(grep -a '^  - \|^renewed' <<<"$OUT$ERR" | tr '\n' '|')"
[ "$plan_rc" = 0 ] && [ "$rc" = 3 ] && grep -q "cannot reach the agent on $REMOTE_A_IP:4799" <<<"$OUT$ERR" &&
	! grep -q '^renewed' <<<"$OUT" && [ "$(vm_runstate "$b_qmp")" = running ]
tap_ok $? "failback with --renew, planned: the renewal first, then the protection; a blocker refuses it before the guest moves; nothing done on either host"
standby start --pid "$on_b" --remote "$REMOTE_A_IP:4787" --pki-dir "$pki_tool_b" --interval 500 --heartbeat-timeout "$HB" --renew
rc=$?
tap_diag "B -> A, --renew: start: exit $rc: $OUT $(grep -a '^  - ' <<<"$ERR" | tr '\n' '|') $(tail -n 3 <<<"$ERR" | tr '\n' '|')"
new=$(sed -n 's/^renewed: .* it now runs in a new QEMU, PID \([0-9]*\) .*/\1/p' <<<"$OUT")
SEC=$(secondary_of "$OUT")
newcmd=$(tr '\0' '\n' <"/proc/$new/cmdline" 2>/dev/null | grep -A1 -x -- -drive | grep -v -x -- '-drive\|--')
tap_diag "the new QEMU's drives: $(tr '\n' '|' <<<"$newcmd")"
[ "$rc" = 0 ] && [ -n "$new" ] && grep -q "^protected: PID $new, secondary PID" <<<"$OUT" &&
	[ "$newcmd" = "if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0.driver=qcow2,children.0.file.filename=$IMG" ] &&
	! ls -l "/proc/$new/fd/" | grep -q "qcow2 (deleted)" && proc_gone_soon "$on_b" 30
tap_ok $? "--renew: the guest upgraded in place on B into a new QEMU (PID ${new:-none}) with the quorum over B's image and no scratch image, the old one gone"
on_b=$new b_serial=/proc/$new/root$VM_DIR/serial.log b_qmp=/proc/$new/root$MON/test.sock b_img=/proc/$new/root$IMG
[ "$rc" = 0 ] && [ -n "$SEC" ] && [ "$(ip netns identify "$SEC")" = "$REMOTE_NS_A" ] &&
	wait_for 120 "5 checkpoints B -> A" at_least_checkpoints "$on_b" 5
tap_ok $? "failback with the disk from the new process: protected towards A (the secondary PID ${SEC:-none} on A), checkpoints flowing"
on_a=$SEC a_serial=/proc/$SEC/root$VM_DIR/serial.log a_qmp=/proc/$SEC/root$MON/test.sock a_img=/proc/$SEC/root$IMG
tap_diag "a write on B: $(disk_write_protected "$b_qmp" "$on_b" 500 0xa5 2M)"
kill_for_takeover "$on_b" "$on_a" "$a_qmp" "$a_serial" "/proc/$agent_b/root$QEMU_UPGRADE_STATE_DIR/standby-$on_b.log"
rc=$?
hmp "$a_qmp" 'qemu-io colo-disk0 flush' >/dev/null
tap_diag "A's memcheck: $(grep -a 'MEMCHECK pass=' "$a_serial" | tail -n 1 | tr -d '\r')"
[ "$rc" = 0 ] && [ "$(errors_of "$a_serial")" = 0 ] && [ "$(corrupt_of "$a_serial")" = 0 ] &&
	[ "$(grep -ac 'MEMCHECK READY' "$a_serial")" = 0 ] &&
	wait_for 30 "both writes in A's image" eval 'img_has "$a_img" 0x5a 1M && img_has "$a_img" 0xa5 2M'
tap_ok $? "B's new QEMU SIGKILLed: A runs the guest on, clean, never rebooted, both writes in A's image"
kill -KILL "$on_a" 2>/dev/null
tap_done
