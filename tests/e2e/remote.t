#!/usr/bin/env bash
# --remote on QEMU 7.2: a VM on host A (a network namespace) with a qcow2 disk and a tap
# moves to host B (another namespace, with its own mount namespace) through the agent there,
# over TLS. The guest keeps checking its memory, its disk arrives block for block, its MAC is
# announced and it answers pings on B's tap, nothing of it stays on A, and a later upgrade
# on B is zero-copy. Before that, what must not touch the VM: no agent, a disk and no storage
# choice, a certificate another CA signed, a dry run; and what must cost nothing: a failure after the new QEMU
# started there, and the agent's session killed mid-upgrade (B is left clean both times).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"

tap_plan 31
remote_hosts || { echo "Bail out! cannot create the two network namespaces"; exit 1; }
img=$(mktemp -d)
_vm_paths+=("$img")

# The VM's directory holds its disk too; the agent's tmpfs hides it on B.
vm_guest_build || exit 1
dir=$(mktemp -d /tmp/vm-remote.XXXXXX) && _vm_paths+=("$dir")
qemu-img create -q -f qcow2 "$dir/disk.qcow2" 64M
qemu-io -f qcow2 -c 'write -P 0xa5 0 1M' -c 'write -P 0x3c 40M 2M' "$dir/disk.qcow2" >/dev/null
ip netns exec "$REMOTE_NS_A" "$QEMU" -accel tcg -machine q35,memory-backend=mem0 \
	-object memory-backend-memfd,id=mem0,size=256M,share=on -m 256M -smp 1 -nodefaults -display none \
	-kernel "$VM_KERNEL" -initrd "$VM_INITRD" \
	-append "$VM_CMDLINE memcheck_mib=32 net_ip=10.0.2.15/24" \
	-chardev "file,id=serial0,path=$dir/serial.log" -serial chardev:serial0 \
	-qmp "unix:$dir/qmp.sock,server=on,wait=off" -daemonize -pidfile "$dir/qemu.pid" \
	-netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:07 \
	-drive "file=$dir/disk.qcow2,format=qcow2,if=virtio,id=disk0" 2>"$dir/qemu.err" || { cat "$dir/qemu.err" >&2; exit 1; }
VM_PID=$(cat "$dir/qemu.pid") && vm_track_pid "$VM_PID"
VM_DIR=$dir VM_SERIAL=$dir/serial.log VM_QMP=$dir/qmp.sock
ip -n "$REMOTE_NS_A" addr add 10.0.2.1/24 dev tap0 && ip -n "$REMOTE_NS_A" link set tap0 up
# Host B has the tap the VM will use there, as its network setup would.
ip -n "$REMOTE_NS_B" tuntap add dev tap0 mode tap && ip -n "$REMOTE_NS_B" addr add 10.0.2.1/24 dev tap0 &&
	ip -n "$REMOTE_NS_B" link set tap0 up
vm_wait_ready || exit 1
ip netns exec "$REMOTE_NS_A" ping -c 3 -W 5 10.0.2.15 >/dev/null
tap_ok $? "the guest answers pings on host A"
# A write while the VM runs, through QEMU: the copy must carry it.
vm_qmp "$VM_QMP" '{"execute":"human-monitor-command","arguments":{"command-line":"qemu-io disk0 \"write -P 0x77 8M 512k\""}}' >/dev/null
old=$VM_PID

# 1. No agent yet: nothing is touched.
remote_upgrade --copy-storage
rc=$?
tap_diag "no agent: exit $rc: $(cat "$VM_DIR/err")"
[ "$rc" = 2 ] && grep -q "cannot connect to the agent" "$VM_DIR/err"
tap_ok $? "no agent on B: exit 2, and the message says so"

remote_agent_start "$VM_DIR" || { echo "Bail out! the agent did not start"; exit 1; }

# 2. A disk, and neither --copy-storage nor --shared-storage.
remote_upgrade
rc=$?
tap_diag "no storage choice: exit $rc: $(cat "$VM_DIR/err")"
[ "$rc" = 3 ] && grep -q -- "--copy-storage" "$VM_DIR/err"
tap_ok $? "a VM with a disk and no storage choice is refused (exit 3) and told the options"

# 3. A certificate the agent's CA did not sign: the agent lets nothing in.
badpki=$(mktemp -d) && _vm_paths+=("$badpki") && remote_ca "$badpki" other-ca &&
	cp "$REMOTE_PKI_A/ca-cert.pem" "$badpki/ca-cert.pem.trusted" &&
	remote_cert "$badpki" "$badpki/client-cert.pem" "$badpki/client-key.pem" "$REMOTE_CLIENT_NAME" "DNS:$REMOTE_CLIENT_NAME" &&
	mv "$badpki/ca-cert.pem.trusted" "$badpki/ca-cert.pem"
# `check --remote`: the agent answers over TLS and names the QEMU there; with a certificate of
# another CA it says why not.
out=$(ip netns exec "$REMOTE_NS_A" "$QU_BIN" check --remote "$REMOTE_B_IP" --pki-dir "$REMOTE_PKI_A")
rc=$?
bad=$(ip netns exec "$REMOTE_NS_A" "$QU_BIN" check --remote "$REMOTE_B_IP" --pki-dir "$badpki")
badrc=$?
tap_diag "check --remote: exit $rc; with another CA's certificate: exit $badrc: $(grep agent <<<"$bad")"
[ "$rc" = 0 ] && grep -q '^yes  agent on the other host .*reachable over TLS' <<<"$out" &&
	grep -q '^yes  QEMU on the other host .*QEMU 7\.2' <<<"$out" && [ "$badrc" = 1 ] &&
	grep -q '^NO   agent on the other host .*TLS: the agent ended the connection' <<<"$bad"
tap_ok $? "check --remote: the agent over TLS and the QEMU there; another CA's certificate: NO, and why"
ip netns exec "$REMOTE_NS_A" "$QU_BIN" --pid "$VM_PID" --remote "$REMOTE_B_IP" --pki-dir "$badpki" \
	--copy-storage --quiet >/dev/null 2>"$VM_DIR/err"
rc=$?
tap_diag "another CA: exit $rc: $(cat "$VM_DIR/err"); agent: $(grep -i 'refused' "$REMOTE_AGENT_LOG" | tail -1)"
[ "$rc" = 2 ] && grep -q "TLS: the agent ended the connection" "$VM_DIR/err" &&
	agent_logged "TLS with .* refused: .*certificate verify failed"
tap_ok $? "a tool whose certificate another CA signed is turned away (exit 2; the agent logs why)"

# 4. The dry run: the plan, through the agent's probe.
REPORT=$(ip netns exec "$REMOTE_NS_A" "$QU_BIN" --pid "$VM_PID" --remote "$REMOTE_B_IP" --pki-dir "$REMOTE_PKI_A" \
	--copy-storage --dry-run --json --quiet)
tap_diag "dry run: $REPORT"
[ "$(json_get "$REPORT" result)" = planned ] && [ "$(json_get "$REPORT" strategy)" = remote-stop-and-copy ] &&
	[ "$(jq -r '.disks[0].copied' <<<"$REPORT")" = true ] && [ "$(json_get "$REPORT" remote)" = "$REMOTE_B_IP" ]
tap_ok $? "--dry-run: planned, remote-stop-and-copy (TCG 7.2), the disk to be copied, the host named"
[ "$(vm_runstate)" = running ] && [ -z "$(remote_qemus)" ] && [ ! -e "/proc/$REMOTE_AGENT/root$VM_DIR/disk.qcow2" ]
tap_ok $? "--dry-run changed nothing: the VM runs on A, no QEMU and no image on B"

# 5. A failure after the new QEMU started on B: rolled back, and B is clean.
QEMU_UPGRADE_FAULT=3 remote_upgrade --copy-storage
rc=$?
tap_diag "fault after the start: exit $rc: $(cat "$VM_DIR/err")"
tap_is "$rc" 1 "an injected fault after the start on B rolls back (exit 1)"
tap_is "$(vm_runstate)" running "the old QEMU runs the guest again"
for _ in $(seq 50); do [ -z "$(remote_qemus)" ] && break; sleep 0.1; done
tap_is "$(remote_qemus)" "" "no QEMU is left on B"
[ ! -e "/proc/$REMOTE_AGENT/root$VM_DIR/disk.qcow2" ] && [ ! -e "/proc/$REMOTE_AGENT/root$VM_DIR/qmp.sock" ]
tap_ok $? "the agent removed the image and the socket it made on B"
grep -q "new QEMU on the other host stopped" <<<"$(json_get "$REPORT" rolled_back)"
tap_ok $? "the report says the new QEMU on B was stopped"

# 5a. B's tap held by someone else (a multiqueue tap would take the VM in as another queue of
# that network): refused at the start there, rolled back.
ip netns exec "$REMOTE_NS_B" "$QU_BUILD/tests/helpers/tapopen" tap0 3 sleep 60 &
holder=$!
vm_track_pid "$holder" 2>/dev/null
sleep 0.3
remote_upgrade --copy-storage
rc=$?
tap_diag "tap held on B: exit $rc: $(cat "$VM_DIR/err")"
[ "$rc" = 1 ] && grep -q "tap 'tap0' is in use on this host by PID" "$VM_DIR/err" && [ "$(vm_runstate)" = running ] &&
	[ -z "$(remote_qemus)" ]
tap_ok $? "a tap another process holds on B is refused there (exit 1, rolled back, the reason given)"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null

# 5b. The agent's session process dies (killed, as the OOM killer would) while the tool waits
# with the new QEMU started on B: the tool rolls back, and the agent's listener stops that
# QEMU and removes what the session made.
QEMU_UPGRADE_FAULT=3:pause=4000 remote_upgrade --copy-storage &
tool=$!
for _ in $(seq 100); do
	session=$(ps -o pid= --ppid "$REMOTE_AGENT" | tr -d ' ' | head -n 1)
	[ -n "$session" ] && [ -n "$(remote_qemus)" ] && break
	sleep 0.1
done
# Into the tool's pause (after the start, the export and the disk copy; were it slower, the
# kill lands during the start, and the outcome must be the same).
sleep 2
kill -KILL "$session" 2>/dev/null
wait "$tool"
rc=$?
tap_diag "session killed: exit $rc: $(cat "$VM_DIR/err")"
wait_for 30 "B's QEMU to go" remote_no_qemu
[ "$rc" = 1 ] && [ "$(vm_runstate)" = running ]
tap_ok $? "the agent's session killed mid-upgrade: rolled back (exit 1), the VM runs on A"
agent_logged "ended without cleaning up: its new QEMU stopped" &&
	[ -z "$(remote_qemus)" ] && [ ! -e "/proc/$REMOTE_AGENT/root$VM_DIR/disk.qcow2" ]
tap_ok $? "and the agent stopped that session's QEMU and removed its image"

# 6. The move.
tls_before=$(ls -d /run/qemu-upgrade-tls-* 2>/dev/null)
frames=$(ip netns exec "$REMOTE_NS_B" cat /sys/class/net/tap0/statistics/rx_packets)
ip netns exec "$REMOTE_NS_A" ping -i 0.05 -c 400 -q 10.0.2.15 >/dev/null 2>&1 &
pinger=$!
remote_upgrade --copy-storage
rc=$?
kill "$pinger" 2>/dev/null; wait "$pinger" 2>/dev/null
tap_diag "move: exit $rc: $REPORT $(cat "$VM_DIR/err")"
tap_is "$(json_get "$REPORT" result)" upgraded "the VM moved to host B"
# Everything below reads B through /proc/NEWPID/root: without a new QEMU it would read A.
[ "$VM_PID" != "$old" ] || { echo "Bail out! the VM did not move"; exit 1; }
# QEMU's announce: 5 rounds, the first after 50 ms, the last by 550 ms; counted from
# before the move until the rounds are over, before any other traffic on B.
sleep 1
frames=$(( $(ip netns exec "$REMOTE_NS_B" cat /sys/class/net/tap0/statistics/rx_packets) - frames ))
[ "$(json_get "$REPORT" announced)" = true ] && [ "$frames" -ge 5 ]
tap_ok $? "the guest's MAC was announced on B (announced: $(json_get "$REPORT" announced), $frames frames from the NIC)"
tap_check "the old QEMU is gone" proc_gone "$old"
[ "$(readlink "/proc/$VM_PID/ns/net")" = "$(ip netns exec "$REMOTE_NS_B" readlink /proc/self/ns/net)" ]
tap_ok $? "the new QEMU runs in host B's network namespace"
[ ! -e "$VM_DIR/qmp.sock" ] && [ ! -e "$VM_DIR/qemu.pid" ]
tap_ok $? "nothing of the VM is left on A (QMP socket, pidfile)"
tap_is "$(cat "/proc/$VM_PID/root$VM_DIR/qemu.pid" 2>/dev/null)" "$VM_PID" "B's pidfile names the new QEMU"
tap_is "$(vm_runstate "$VM_QMP")" running "the VM's QMP socket on B answers: running"
# The state was loaded over TLS (the agent read the new QEMU's tls-creds before it cleared
# them), and neither the key files nor the settings stay: the new QEMU is as if started there.
leaked=$(remote_tls_leaks "$tls_before")
[ "$(json_get "$REPORT" tls)" = true ] &&
	vm_qmp "$VM_QMP" '{"execute":"query-migrate-parameters"}' | grep -q '"tls-creds": ""' && [ -z "$leaked" ]
tap_ok $? "RAM came over TLS; no key file and no TLS setting is left on either host"
vm_memcheck_progress 60
tap_ok $? "the guest makes progress on B"
tap_is "$(vm_memcheck_errors)" 0 "the guest reports no memory corruption"
qemu-img compare -U -f qcow2 -F qcow2 "$VM_DIR/disk.qcow2" "/proc/$VM_PID/root$VM_DIR/disk.qcow2" >/dev/null
tap_ok $? "the disk on B is the disk on A, block for block (with the write made while it ran)"
qemu-img check -U -q "/proc/$VM_PID/root$VM_DIR/disk.qcow2"
tap_ok $? "the image on B is a sound qcow2"
ip netns exec "$REMOTE_NS_B" ping -c 3 -W 5 10.0.2.15 >/dev/null
tap_ok $? "the guest answers pings on host B's tap"
[ "$(json_get "$REPORT" ram_copied_bytes)" -gt $((100 << 20)) ]
tap_ok $? "guest RAM was copied ($(json_get "$REPORT" ram_copied_bytes) bytes)"

# 7. On B the moved VM's RAM is a shared memfd: a local upgrade there is zero-copy.
new=$VM_PID
REPORT=$(ip netns exec "$REMOTE_NS_B" nsenter -t "$REMOTE_AGENT" -m "$QU_BIN" --pid "$new" --json --quiet 2>"$VM_DIR/err2")
tap_diag "local upgrade on B: $REPORT $(cat "$VM_DIR/err2" 2>/dev/null)"
tap_is "$(json_get "$REPORT" strategy)" shared-ram-handover "the moved VM's RAM is shared on B: its next upgrade there is zero-copy"
n2=$(json_get "$REPORT" new_pid)
[[ $n2 =~ ^[0-9]+$ ]] && vm_track_pid "$n2" && VM_PID=$n2 VM_SERIAL=/proc/$n2/root$VM_DIR/serial.log
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest is clean after that upgrade too"
tap_done
