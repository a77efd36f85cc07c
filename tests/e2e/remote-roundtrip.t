#!/usr/bin/env bash
# A VM with a tap and a disk goes to host B and comes back, each way on one of the two standard
# transports: A -> B over ssh:// (a real sshd on B, the operator's key and known_hosts) with
# --copy-storage-inc --verify, then B -> A over the TLS agent on A (x509 both ways: A's
# agent certificate names A's address, the tool on B has its own client certificate, which
# A's agent_tls_clients lists) with --copy-storage-inc --verify again. The disk is a qcow2
# overlay on a raw base that both hosts hold at the same path: only the overlay crosses, each
# way; a write made on A before the first move and one made on B before the return are both
# in the disk at the end; the guest checks its own memory the whole time and answers pings on
# the tap of the host it runs on; nothing is left running on B.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"

[ -x /usr/sbin/sshd ] || { echo "1..0 # SKIP no sshd (openssh-server; tests/install-deps.sh installs it)"; exit 0; }
tap_plan 17
remote_hosts || { echo "Bail out! cannot create the two network namespaces"; exit 1; }
vm_guest_build || exit 1
# The base lies where neither host hides it: the same file, at the same path, on A and B.
bdir=$(mktemp -d) odir=$(mktemp -d) flat=$(mktemp -d) && _vm_paths+=("$bdir" "$odir" "$flat")
base=$bdir/base.raw
qemu-img create -q -f raw "$base" 64M
qemu-io -f raw -c 'write -P 0x5a 0 48M' "$base" >/dev/null
qemu-img create -q -f qcow2 -b "$base" -F raw "$odir/top.qcow2" 64M
qemu-io -f qcow2 -c 'write -P 0x11 1M 2M' "$odir/top.qcow2" >/dev/null

# The guest's network: a tap named tap0 on each host (persistent, made before the QEMU that
# opens it), the host's side 10.0.2.1, the guest 10.0.2.15.
for ns in "$REMOTE_NS_A" "$REMOTE_NS_B"; do
	ip -n "$ns" tuntap add dev tap0 mode tap && ip -n "$ns" addr add 10.0.2.1/24 dev tap0 &&
		ip -n "$ns" link set tap0 up || { echo "Bail out! cannot make tap0 in $ns"; exit 1; }
done
VM_APPEND="net_ip=10.0.2.15/24" VM_WRAP="ip netns exec $REMOTE_NS_A" vm_start trip \
	-drive "file=$odir/top.qcow2,format=qcow2,if=virtio,id=disk0" \
	-netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:0a || exit 1
vm_wait_ready || exit 1
dirs=("$VM_DIR" "$odir")

# Host B: sshd, which starts the agent for the tool on A.
remote_agent_conf "${dirs[@]}" || exit 1
REMOTE_SSHD_ENV="QEMU_UPGRADE_CONF=$REMOTE_AGENT_CONF" remote_sshd_start "${dirs[@]}" ||
	{ echo "Bail out! sshd did not start on B"; exit 1; }
onb() { nsenter -t "$REMOTE_SSHD" -m "$@"; }

# Host A: the TLS agent for the way back, its certificate for A's address; the tool on B has
# a certificate of its own (tool-b), the only name A's agent lets in.
pki_a=$(mktemp -d) pki_tool_b=$(mktemp -d) && _vm_paths+=("$pki_a" "$pki_tool_b")
cp "$REMOTE_CA/ca-cert.pem" "$pki_a/" && cp "$REMOTE_CA/ca-cert.pem" "$pki_tool_b/" &&
	remote_cert "$REMOTE_CA" "$pki_a/server-cert.pem" "$pki_a/server-key.pem" agent-a.qu-test "DNS:agent-a.qu-test,IP:$REMOTE_A_IP" &&
	remote_cert "$REMOTE_CA" "$pki_tool_b/client-cert.pem" "$pki_tool_b/client-key.pem" tool-b.qu-test "DNS:tool-b.qu-test" ||
	{ echo "Bail out! cannot make the certificates for host A"; exit 1; }
REMOTE_TLS_CLIENTS=tool-b.qu-test remote_agent_start_in "$REMOTE_NS_A" "$REMOTE_A_IP" "$pki_a" "${dirs[@]}" ||
	{ echo "Bail out! the agent on A did not start"; exit 1; }
agent_a=$REMOTE_AGENT agent_a_log=$REMOTE_AGENT_LOG
REMOTE_AGENT=$REMOTE_SSHD
ona() { nsenter -t "$agent_a" -m "$@"; }

# qemu_io QMP COMMAND: the running QEMU runs a qemu-io command on its disk.
qemu_io() {
	vm_qmp "$1" "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"qemu-io disk0 \\\"$2\\\"\"}}" >/dev/null
}
# disk_write QMP PATTERN OFFSET: the running QEMU writes 256 KiB to its disk, then flushes it,
# so that the image read from outside (qemu-img -U) has the qcow2 metadata QEMU cached.
disk_write() { qemu_io "$1" "write -P $2 $3 256k" && qemu_io "$1" flush; }

# only_top_crossed: the last move's report says the top image alone was copied (the overlay
# holds 2 MiB and the writes; the base 48 MiB), over QEMU's TLS, and --verify agreed. Sets copied.
only_top_crossed() {
	copied=$(json_get "$REPORT" disk_copied_bytes)
	[[ $copied =~ ^[0-9]+$ ]] && [ "$copied" -ge $((2 << 20)) ] && [ "$copied" -lt $((32 << 20)) ] &&
		[ "$(jq -r '.disks[0].copy' <<<"$REPORT")" = top ] && [ "$(json_get "$REPORT" verified)" = true ] &&
		[ "$(json_get "$REPORT" tls)" = true ]
}

# 1. A -> B over ssh, only the top image crossing.
disk_write "$VM_QMP" 0x77 8M
qemu-img convert -U -f qcow2 -O raw "$odir/top.qcow2" "$flat/on-a.raw"
old=$VM_PID
remote_upgrade --copy-storage-inc --verify
rc=$?
tap_diag "A -> B over ssh: exit $rc: $REPORT $(grep -v '^{' "$VM_DIR/err")"
tap_is "$(json_get "$REPORT" result)" upgraded "A -> B over ssh:// with --copy-storage-inc: the VM moved"
[ "$VM_PID" != "$old" ] || { echo "Bail out! the VM did not move to B"; exit 1; }
only_top_crossed
tap_ok $? "only the overlay crossed ($copied bytes over a base holding 48 MiB), over QEMU's TLS, --verify agreed"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest makes progress on B and reports no memory corruption"
qemu_io "$VM_QMP" flush
onb qemu-img compare -U -f raw -F qcow2 "$flat/on-a.raw" "$odir/top.qcow2" >/dev/null
tap_ok $? "the chain on B reads as it did on A, the write made on A with it"
# (The tool returns at the commit point; the old QEMU's exit follows.)
proc_gone_soon "$old" && for _ in $(seq 100); do [ ! -e "$VM_DIR/qmp.sock" ] && break; sleep 0.1; done
[ ! -e "$VM_DIR/qmp.sock" ] && proc_gone "$old"
tap_ok $? "the QEMU on A is gone, its monitor's socket with it"
ip netns exec "$REMOTE_NS_B" ping -c 3 -W 5 10.0.2.15 >/dev/null
tap_ok $? "the guest answers pings on host B's tap"
for _ in $(seq 100); do [ -z "$(remote_agents)" ] && break; sleep 0.1; done
tap_is "$(remote_agents)" "" "the agent's ssh session on B ended with the move"

# 2. B -> A over the TLS agent on A: the tool runs on B (its network and mount namespace).
disk_write "$VM_QMP" 0x66 12M
onb qemu-img convert -U -f qcow2 -O raw "$odir/top.qcow2" "$flat/on-b.raw"
on_b=$VM_PID
REPORT=$(nsenter -t "$REMOTE_SSHD" -m -n "$QU_BIN" --pid "$VM_PID" --remote "$REMOTE_A_IP" --pki-dir "$pki_tool_b" \
	--copy-storage-inc --verify --json --quiet 2>"$flat/err")
rc=$?
tap_diag "B -> A over TLS: exit $rc: $REPORT $(grep -v '^{' "$flat/err")"
tap_is "$(json_get "$REPORT" result)" upgraded "B -> A over the TLS agent with --copy-storage-inc: the VM moved back"
new=$(json_get "$REPORT" new_pid)
[[ $new =~ ^[0-9]+$ ]] || { echo "Bail out! the VM did not move back to A"; exit 1; }
VM_PID=$new VM_SERIAL=/proc/$new/root$VM_DIR/serial.log VM_QMP=/proc/$new/root$VM_DIR/qmp.sock
vm_track_pid "$VM_PID"
grep -q "agent: session [0-9]* with $REMOTE_B_IP port [0-9]* (.*tool-b.qu-test" "$agent_a_log" &&
	[ "$(ip netns identify "$VM_PID")" = "$REMOTE_NS_A" ]
tap_ok $? "A's agent admitted the tool on B by its certificate, and started the QEMU on A"
only_top_crossed
tap_ok $? "only the overlay crossed back ($copied bytes), over QEMU's TLS, --verify agreed"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest makes progress on A again and reports no memory corruption"
qemu_io "$VM_QMP" flush
ona qemu-img compare -U -f raw -F qcow2 "$flat/on-b.raw" "$odir/top.qcow2" >/dev/null
tap_ok $? "the chain on A reads as it did on B"
cmp -s -n 256k -i $((12 << 20)):0 "$flat/on-b.raw" <(head -c 256k /dev/zero | tr '\0' '\146') &&
	cmp -s -n 256k -i $((8 << 20)):0 "$flat/on-b.raw" <(head -c 256k /dev/zero | tr '\0' '\167')
tap_ok $? "the writes made on A and on B are both in the disk"
[ "$(ona qemu-img info -U --output=json "$odir/top.qcow2" | jq -r '.["backing-filename"]')" = "$base" ]
tap_ok $? "A's new top image has the same base as its backing file"
for _ in $(seq 100); do proc_gone "$on_b" && [ -z "$(remote_qemus)" ] && break; sleep 0.1; done
[ -z "$(remote_qemus)" ] && [ -z "$(remote_agents)" ] && proc_gone "$on_b"
tap_ok $? "nothing runs on B any more: no QEMU, no agent"
[ "$(vm_runstate)" = running ]
tap_ok $? "the VM runs on A (QMP at its path, through A's new QEMU)"
ip netns exec "$REMOTE_NS_A" ping -c 3 -W 5 10.0.2.15 >/dev/null
tap_ok $? "the guest answers pings on host A's tap again"
tap_done
