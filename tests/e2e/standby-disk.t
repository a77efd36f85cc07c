#!/usr/bin/env bash
# qemu-upgrade standby with a disk (issue 16): the VM's IDE disk under a quorum node with one
# child is replicated to the secondary. Two "hosts" (network namespaces joined by a veth, the
# TLS agent on B with a tmpfs over the VM's directory), real QEMU 11.1.3 under TCG, the
# memory-checking guest with a virtio-net NIC on a tap of the same name on both hosts.
# 1. Protected: the secondary runs qemu-colo.rst's disk graph (its copy of the image as the
#    parent, a replication node over agent-made active and hidden images it gets by
#    descriptor, the quorum over it), the primary's quorum has the replication child.
# 2. A pattern written through the primary's quorum (HMP qemu-io) while protected; the
#    primary SIGKILLed: the secondary runs the guest, clean, and B's image holds the pattern.
# 3. Another VM protected, then `standby stop`: its block graph is as before protection, and
#    B holds neither a QEMU nor the copy of its image.
# 4. The secondary SIGKILLed: protection ends, the primary's graph as before, it still writes.
# 5. The supervisor SIGKILLed: --recover removes the replication child with the rest.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"
. "$here/../lib/standby.sh"

standby_qemu

tap_plan 12
standby_hosts

caps_on() { vm_qmp "$VM_QMP" '{"execute":"query-migrate-capabilities"}' | jq -c '[.return[] | select(.state)] | map(.capability)'; }
# The block graph as QEMU names it: node names and drivers, and each quorum's children.
graph() {
	{ vm_qmp "$VM_QMP" '{"execute":"query-named-block-nodes","arguments":{"flat":true}}' |
		jq -c '[.return[] | "\(.["node-name"] | sub("^#block[0-9]+"; "#auto")):\(.drv)"] | sort'
	  vm_qmp "$VM_QMP" '{"execute":"query-block"}' | jq -c '[.return[] | {device, children: [.inserted.children[]?.child]}]'; } | tr '\n' ' '
}

# protected_vm NAME IP MAC PORT: a VM on A with a quorum disk and a tap (one of the same name on
# B), the agent on B (at PORT, a tmpfs over the VM's directory), then protected; sets TAP, MON
# (the test's own monitor directory), IMG, GRAPH (the block graph before), SEC.
protected_vm() {
	local name=$1 ip=$2 mac=$3 port=$4 ns
	TAP=sd$port
	MON=$(mktemp -d /tmp/qu-sbd-mon.XXXXXX) && _vm_paths+=("$MON")
	IMG=$MON/primary.qcow2
	qemu-img create -q -f qcow2 "$IMG" 64M || exit 1
	QEMU=$Q11 VM_APPEND="net_ip=$ip/24" VM_WRAP="ip netns exec $REMOTE_NS_A" vm_start "$name" \
		-netdev "tap,id=hn0,ifname=$TAP,script=no,downscript=no,vhost=off,vnet_hdr=off" \
		-device "virtio-net-pci,id=net0,netdev=hn0,mac=$mac" \
		-drive "if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0.file.filename=$IMG,children.0.driver=qcow2" \
		-qmp "unix:$MON/test.sock,server=on,wait=off" || { echo "Bail out! VM $name did not start"; exit 1; }
	VM_QMP=$MON/test.sock
	for ns in "$REMOTE_NS_A" "$REMOTE_NS_B"; do
		[ "$ns" = "$REMOTE_NS_A" ] || ip -n "$ns" tuntap add dev "$TAP" mode tap || exit 1
		ip -n "$ns" addr add "${ip%.*}.1/24" dev "$TAP" && ip -n "$ns" link set "$TAP" up || exit 1
	done
	vm_wait_ready || { echo "Bail out! the guest of $name did not come up"; exit 1; }
	GRAPH=$(graph) CAPS=$(caps_on)
	REMOTE_PORT=$port REMOTE_AGENT_BINARIES="$Q11" remote_agent_start "$VM_DIR" "$MON" ||
		{ echo "Bail out! the agent did not start"; exit 1; }
	standby start --pid "$VM_PID" --remote "$REMOTE_B_IP:$port" --pki-dir "$REMOTE_PKI_A" --interval 500 --heartbeat-timeout 12000
	local rc=$?
	tap_diag "$name: start: exit $rc: $OUT $(tail -n 5 <<<"$ERR")"
	[ "$rc" = 0 ] || tap_diag "supervisor log: $(tail -n 15 "$QEMU_UPGRADE_STATE_DIR/standby-$VM_PID.log" | tr '\n' '|')"
	SEC=$(secondary_of "$OUT")
	[ "$rc" = 0 ] && [ -n "$SEC" ] && wait_for 120 "3 checkpoints" at_least_checkpoints "$VM_PID" 3
}

# 1. Protected, with the disk.
protected_vm sbd-kill 192.168.81.10 52:54:00:12:81:10 4791
tap_ok $? "a VM with a quorum disk: protected, checkpoints flowing (the secondary PID ${SEC:-none} on B)"
primary=$VM_PID a_serial=$VM_SERIAL
b_serial=/proc/$SEC/root$VM_DIR/serial.log b_qmp=/proc/$SEC/root$MON/test.sock b_img=/proc/$SEC/root$IMG
seccmd=$(tr '\0' '\n' <"/proc/$SEC/cmdline" 2>/dev/null | grep -A1 -x -- -drive | grep -v -x -- '-drive\|--')
tap_diag "the secondary's drives: $(tr '\n' '|' <<<"$seccmd")"
grep -q "^if=none,id=qu-colo-parent,driver=qcow2,file.filename=$IMG$" <<<"$seccmd" &&
	grep -q "^if=none,id=qu-colo-childs,driver=replication,mode=secondary,top-id=colo-disk0,file.driver=qcow2,file.file.filename=/proc/self/fd/[0-9]*,file.backing.driver=qcow2,file.backing.file.filename=/proc/self/fd/[0-9]*,file.backing.backing=qu-colo-parent$" <<<"$seccmd" &&
	grep -q "^if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0=qu-colo-childs$" <<<"$seccmd" &&
	ls -l "/proc/$SEC/fd/" | grep -q "qcow2 (deleted)"
tap_ok $? "the secondary's disk graph: parent on B's copy, replication over its active and hidden images (held open, unlinked), the quorum over it"
children=$(vm_qmp "$VM_QMP" '{"execute":"query-block"}' | jq -c '[.return[] | select(.device == "colo-disk0") | .inserted.children[] | .["node-name"]]')
tap_diag "the primary's quorum children: $children"
grep -q '"qu-colo-replication"' <<<"$children"
tap_ok $? "the primary's quorum has the replication child"

# 2. A write through the primary's quorum while protected, then the primary's death.
# Between two checkpoints: one that comes during a write makes QEMU's secondary abort.
r=$(disk_write_protected "$VM_QMP" "$VM_PID" 500 0x5a 1M)
tap_diag "qemu-io on the primary: $r"
c0=$(checkpoints "$primary")
wait_for 60 "two more checkpoints" at_least_checkpoints "$primary" $((${c0:-0} + 2))
t0=$(date +%s.%N)
kill -KILL "$primary"
wait_for 60 "the secondary to run the guest" out_of_colo_running "$b_qmp"
rc=$?
tap_diag "kill to running on B: $(echo "$(date +%s.%N) - $t0" | bc) s; the agent: $(grep -a 'taking over\|nbd-server-stop\|runs here\|said: \|by itself\|failed: ' "$REMOTE_AGENT_LOG" | tr '\n' '|')"
[ "$rc" = 0 ] || takeover_diag "$primary" "$SEC" "$b_qmp"
[ "$rc" = 0 ] && ! grep -q "warning: nbd-server-stop" "$REMOTE_AGENT_LOG"
tap_ok $? "SIGKILL of the primary: the secondary runs the guest (its disk export stopped first)"
b0=$(pass_of "$b_serial")
b_progress() { local p; p=$(pass_of "$b_serial"); [ "${p:-0}" -ge $((${b0:-0} + 2)) ]; }
wait_for 120 "two memcheck passes on B" b_progress
rc=$?
tap_diag "B's memcheck: $(grep -a 'MEMCHECK pass=' "$b_serial" | tail -n 1 | tr -d '\r')"
memcheck_diag "$b_serial"
[ "$rc" = 0 ] && [ "$(errors_of "$b_serial")" = 0 ] && [ "$(corrupt_of "$b_serial")" = 0 ]
tap_ok $? "the guest on B checks its memory on, clean"
# The failover commits the active and hidden images into B's image; QEMU flushes first.
hmp "$b_qmp" 'qemu-io colo-disk0 flush' >/dev/null
img_has() { qemu-io -U -r -f qcow2 -c 'read -P 0x5a 1M 64k' "$b_img" 2>&1 | grep -q '^read 65536/65536'; }
wait_for 30 "the pattern in B's image" img_has
rc=$?
tap_diag "B's image: $(qemu-io -U -r -f qcow2 -c 'read -P 0x5a 1M 64k' "$b_img" 2>&1 | head -n 2 | tr '\n' ' ')"
[ "$rc" = 0 ]
tap_ok $? "the write made on the primary while protected is in B's image"
kill -KILL "$SEC" 2>/dev/null
kill "$REMOTE_AGENT" 2>/dev/null

# 3. Another VM, protected then stopped: its disk as before, nothing left on B.
protected_vm sbd-stop 192.168.82.10 52:54:00:12:82:10 4792
tap_ok $? "a second VM with a quorum disk protected (the secondary PID ${SEC:-none})"
agent=$REMOTE_AGENT
standby stop --pid "$VM_PID"
rc=$?
after=$(graph)
tap_diag "stop: exit $rc: $OUT; graph before $GRAPH; after $after"
tap_diag "the supervisor's log: $(grep -a 'disk\|replication\|failed' "$QEMU_UPGRADE_STATE_DIR/standby-$VM_PID.log" | tr '\n' '|')"
gone() { [ -z "$(remote_qemus)" ] && [ ! -e "/proc/$agent/root$IMG" ]; }
wait_for 30 "B to drop the secondary and its image" gone
tap_diag "capabilities before $CAPS, after $(caps_on)"
[ "$rc" = 0 ] && [ "$after" = "$GRAPH" ] && gone && [ "$(vm_runstate)" = running ] && [ "$(caps_on)" = "$CAPS" ]
tap_ok $? "standby stop: the primary's block graph and migration capabilities as before, it runs; B has no QEMU and no copy of the image"
kill "$REMOTE_AGENT" 2>/dev/null

# 4. The secondary dies: protection ends (broken), the primary's disk as before, and it
#    still writes.
protected_vm sbd-lose 192.168.83.10 52:54:00:12:83:10 4793
tap_ok $? "a third VM with a quorum disk protected (the secondary PID ${SEC:-none})"
kill -KILL "$SEC"
released() { standby status --pid "$VM_PID" --json && [ "$(jq -r .state <<<"$OUT")" = broken ] &&
	[ "$(vm_qmp "$VM_QMP" '{"execute":"query-colo-status"}' | jq -r .return.mode)" = none ] && [ "$(graph)" = "$GRAPH" ]; }
wait_for 60 "the supervisor to release the primary" released
rc=$?
after=$(graph)
r=$(hmp "$VM_QMP" 'qemu-io colo-disk0 \"write -P 0x3c 2M 64k\"')
tap_diag "state: $(jq -c '[.state, .reason]' <<<"$OUT"); graph after $after; a write: $r; run state $(vm_runstate)"
[ "$rc" = 0 ] && [ "$(vm_runstate)" = running ] && [ "$r" = '{"return": ""}' ] &&
	qemu-io -U -r -f qcow2 -c 'read -P 0x3c 2M 64k' "$IMG" 2>&1 | grep -q '^read 65536/65536'
tap_ok $? "the secondary SIGKILLed: broken, the primary's block graph as before, it runs and writes its image"
kill "$REMOTE_AGENT" 2>/dev/null

# 5. The supervisor dies: --recover removes the replication child with the rest.
protected_vm sbd-recover 192.168.84.10 52:54:00:12:84:10 4794
tap_ok $? "a fourth VM with a quorum disk protected (the secondary PID ${SEC:-none})"
standby status --pid "$VM_PID" --json
sup=$(jq -r .supervisor_pid <<<"$OUT")
kill -KILL "$sup"
sec_gone() { ! kill -0 "$SEC" 2>/dev/null; }
wait_for 30 "the agent to stop the secondary" sec_gone
rec=$(ip netns exec "$REMOTE_NS_A" "$QU_BIN" --recover 2>&1)
rc=$?
after=$(graph)
tap_diag "--recover: exit $rc: $rec; graph after $after; mode $(vm_qmp "$VM_QMP" '{"execute":"query-colo-status"}' | jq -r .return.mode); run state $(vm_runstate)"
[ "$rc" = 0 ] && grep -q "PID $VM_PID: its standby supervisor (PID $sup) was gone: protection ended" <<<"$rec" &&
	[ "$after" = "$GRAPH" ] && [ "$(vm_runstate)" = running ]
tap_ok $? "--recover after the supervisor's death: the primary's block graph as before, it runs"
tap_done
