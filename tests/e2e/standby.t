#!/usr/bin/env bash
# qemu-upgrade standby (issue 16), as far as it is built: the plan (`standby start --dry-run`)
# on two "hosts" (network namespaces joined by a veth, the TLS agent on B, and a real sshd there for ssh://), real QEMU 11.1.3
# (Debian sid, tests/qemu-versions/fetch.sh) and 7.2, the memory-checking guest under TCG.
# A VM in the form COLO was measured to protect (docs/standby-research.md: one virtio-net-pci
# on a tap with vhost=off,vnet_hdr=off, one IDE disk under a quorum) is planned, with the
# agent's word on the same binary there; a VM with several unprotectable devices gets every
# blocker in one answer; a 7.2 VM is refused with what was measured on 7.2; an agent that is
# not there is a blocker too; bad arguments are refused before the VM is read. After each,
# the VM is untouched (same QEMU, running, no migration capability set, no object added,
# guest clean and progressing) and B has no QEMU.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"
. "$here/../lib/standby.sh"

standby_qemu

tap_plan 18
remote_hosts || { echo "Bail out! cannot create the two network namespaces"; exit 1; }
vm_guest_build || exit 1
REMOTE_AGENT_BINARIES="$Q11 /usr/bin/qemu-system-x86_64" remote_agent_start || { echo "Bail out! the agent did not start"; exit 1; }
dest=(--remote "$REMOTE_B_IP" --pki-dir "$REMOTE_PKI_A")


# untouched NAME: the VM has one QEMU, running, no migration capability on, no object added
# since OBJECTS was read, its guest progressing and clean; and B runs no QEMU.
untouched() {
	local caps objs
	caps=$(vm_qmp "$VM_QMP" '{"execute":"query-migrate-capabilities"}' | jq -c '[.return[] | select(.state)] | map(.capability)')
	objs=$(vm_qmp "$VM_QMP" '{"execute":"qom-list","arguments":{"path":"/objects"}}' | jq -c '[.return[].name] | sort')
	tap_diag "$1: capabilities on $caps, objects $objs, B's QEMUs: $(remote_qemus | tr '\n' ' ')"
	[ "$(qemu_pids_for "$VM_DIR")" = "$VM_PID" ] && [ "$(vm_runstate)" = running ] && [ "$caps" = '[]' ] &&
		[ "$objs" = "$OBJECTS" ] && [ -z "$(remote_qemus)" ] && vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
	tap_ok $? "$1: the VM is untouched (same QEMU, running, no capability, no object added, guest clean) and B runs no QEMU"
}

objects() { vm_qmp "$VM_QMP" '{"execute":"qom-list","arguments":{"path":"/objects"}}' | jq -c '[.return[].name] | sort'; }

# 1. The form COLO protects on 11.1.
img=$(mktemp -d /tmp/vm-standby-img.XXXXXX) && _vm_paths+=("$img")
qemu-img create -q -f qcow2 "$img/primary.qcow2" 64M
tapa=sbt$$
QEMU=$Q11 VM_WRAP="ip netns exec $REMOTE_NS_A" vm_start standby-ok \
	-netdev "tap,id=hn0,ifname=$tapa,script=no,downscript=no,vhost=off,vnet_hdr=off" \
	-device virtio-net-pci,id=net0,netdev=hn0,mac=52:54:00:12:34:56 \
	-drive "if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0.file.filename=$img/primary.qcow2,children.0.driver=qcow2" ||
	{ echo "Bail out! the 11.1 VM did not start"; exit 1; }
vm_wait_ready || { echo "Bail out! the 11.1 guest did not come up"; exit 1; }
OBJECTS=$(objects)
standby start --pid "$VM_PID" "${dest[@]}" --interval 200 --dry-run
rc=$?
tap_diag "protectable: exit $rc: $OUT"
tap_diag "stderr: $ERR"
[ "$rc" = 0 ] && grep -qx 'result: *planned' <<<"$OUT" && grep -q "^nic net0: *virtio-net-pci on tap $tapa (netdev hn0)" <<<"$OUT" &&
	grep -q "^disk colo-disk0: quorum over $img/primary.qcow2 (qcow2, 64 MiB)" <<<"$OUT" &&
	grep -q "^checkpoints: *every 200 ms" <<<"$OUT" && grep -q "(11.1.3 there)" <<<"$OUT"
tap_ok $? "protectable 11.1 VM: planned (exit 0): its NIC, its quorum disk, the interval, the agent's 11.1.3 at the same path"
standby start --pid "$VM_PID" "${dest[@]}" --dry-run --json
rc=$?
tap_diag "--json: exit $rc: $OUT"
[ "$rc" = 0 ] && [ "$(jq -r '[.result, .qemu_version, .remote_qemu_version, .interval_ms, .nics[0].ifname, .disks[0].device, (.refusals | length)] | @tsv' <<<"$OUT")" = \
	"$(printf 'planned\t11.1.3\t11.1.3\t1000\t%s\tcolo-disk0\t0' "$tapa")" ] &&
	[ "$(jq -r .secondary_memory_bytes <<<"$OUT")" = $((2 * 256 * 1024 * 1024)) ]
tap_ok $? "--json: planned, both versions, the default interval 1000 ms, the tap, the disk, no refusal, 512 MiB for the secondary"
untouched "after the plans"

# 2. Usage: refused before the VM is read.
standby start --pid "$VM_PID" "${dest[@]}" --interval 50 --dry-run
rc=$?
tap_diag "interval 50: exit $rc: $ERR"
[ "$rc" = 2 ] && grep -q "interval 50 ms: give 100 to 60000 ms" <<<"$ERR"
tap_ok $? "--interval 50: a usage error (exit 2) that gives the range"
standby start --pid "$VM_PID" "${dest[@]}" --heartbeat-timeout 30000
rc=$?
tap_diag "heartbeat timeout 30000: exit $rc: $ERR"
[ "$rc" = 2 ] && grep -q "heartbeat timeout 30000 ms: give 4000 to 20000 ms" <<<"$ERR"
tap_ok $? "--heartbeat-timeout 30000: a usage error (exit 2) that gives the range (at most 20 s: the agent's keepalive)"
standby start --pid "$VM_PID" --remote 'ssh://-oProxyCommand=touch${IFS}/tmp/x@host' --dry-run
rc=$?
tap_diag "hostile URI: exit $rc: $ERR"
[ "$rc" = 2 ] && [ -n "$ERR" ]
tap_ok $? "a hostile ssh:// destination: exit 2 before anything runs"
standby stop --pid "$VM_PID"
rc=$?
tap_diag "stop: exit $rc: $ERR"
[ "$rc" = 1 ] && grep -q "standby stop: PID $VM_PID is not protected" <<<"$ERR"
tap_ok $? "standby stop of a VM that is not protected: exit 1, says so"

# 3. No agent there: a blocker, listed with the others.
standby start --pid "$VM_PID" --remote "$REMOTE_B_IP:4999" --pki-dir "$REMOTE_PKI_A" --dry-run
rc=$?
tap_diag "no agent: exit $rc: $OUT"
[ "$rc" = 3 ] && grep -q "^  - cannot reach the agent on $REMOTE_B_IP:4999: " <<<"$OUT"
tap_ok $? "no agent on that port: refused (exit 3), the agent named as the blocker"
# An agent whose policy does not let its host hold standbys (agent_standby, off by default).
agent_ok=$REMOTE_AGENT agent_ok_log=$REMOTE_AGENT_LOG
REMOTE_PORT=4998 REMOTE_AGENT_STANDBY=no REMOTE_AGENT_BINARIES="$Q11" remote_agent_start ||
	{ echo "Bail out! the second agent did not start"; exit 1; }
standby start --pid "$VM_PID" --remote "$REMOTE_B_IP:4998" --pki-dir "$REMOTE_PKI_A" --dry-run
rc=$?
tap_diag "agent_standby unset: exit $rc: $OUT"
[ "$rc" = 3 ] && grep -q "^  - the agent on $REMOTE_B_IP:4998: this host does not hold hot standbys: allowed only with 'agent_standby = yes' in " <<<"$OUT"
tap_ok $? "an agent whose policy does not allow standbys: refused (exit 3), agent_standby named"
kill "$REMOTE_AGENT" && REMOTE_AGENT=$agent_ok REMOTE_AGENT_LOG=$agent_ok_log
untouched "after the refusals"

# 4. The same plan over ssh:// (a real sshd on B runs `qemu-upgrade agent --stdio`).
if [ -x /usr/sbin/sshd ]; then
	tls_agent=$REMOTE_AGENT
	REMOTE_AGENT_BINARIES="$Q11" remote_agent_conf && REMOTE_SSHD_ENV="QEMU_UPGRADE_CONF=$REMOTE_AGENT_CONF" remote_sshd_start ||
		{ echo "Bail out! sshd did not start on B"; exit 1; }
	REMOTE_AGENT=$tls_agent
	standby start --pid "$VM_PID" --remote "$REMOTE_SSH_URI" --dry-run --json
	rc=$?
	tap_diag "ssh://: exit $rc: $(jq -c '{result, remote_qemu_version, refusals}' <<<"$OUT" 2>/dev/null) $ERR"
	for _ in $(seq 50); do [ -z "$(remote_agents)" ] && break; sleep 0.1; done
	[ "$rc" = 0 ] && [ "$(jq -r '[.result, .host, .remote_qemu_version] | @tsv' <<<"$OUT")" = \
		"$(printf 'planned\t%s\t11.1.3' "$REMOTE_SSH_URI")" ] && [ -z "$(remote_agents)" ]
	tap_ok $? "over ssh://: planned with the 11.1.3 the agent found there, and no agent process stays on B"
else
	tap_ok 0 "# SKIP no sshd (openssh-server; tests/install-deps.sh installs it)"
fi
vm_stop

# 5. Everything COLO cannot protect, at once: a virtio-blk disk not under a quorum, an e1000 on
# a tap with a vnet header, a second NIC on user networking, shared memory (ivshmem).
qemu-img create -q -f qcow2 "$img/plain.qcow2" 32M
QEMU=$Q11 VM_WRAP="ip netns exec $REMOTE_NS_A" vm_start standby-bad \
	-netdev "tap,id=hn1,ifname=sbu$$,script=no,downscript=no" -device e1000,id=nic1,netdev=hn1 \
	-netdev user,id=u0 -device virtio-net-pci,id=nic2,netdev=u0 \
	-drive "if=virtio,id=disk1,file=$img/plain.qcow2,format=qcow2" \
	-object memory-backend-memfd,id=sh,size=1M,share=on -device ivshmem-plain,id=shm0,memdev=sh ||
	{ echo "Bail out! the second 11.1 VM did not start"; exit 1; }
vm_wait_ready || { echo "Bail out! the second guest did not come up"; exit 1; }
OBJECTS=$(objects)
standby start --pid "$VM_PID" "${dest[@]}" --dry-run --json
rc=$?
tap_diag "unprotectable: exit $rc: $(jq -c .refusals <<<"$OUT")"
has() { jq -e --arg p "$1" 'any(.refusals[]; test($p))' <<<"$OUT" >/dev/null; }
[ "$rc" = 3 ] && [ "$(jq -r .result <<<"$OUT")" = refused ] &&
	has "^disk disk1 \\(qcow2, .*plain.qcow2\\) is not under a quorum node: .*start the VM with -drive if=ide,id=ID,driver=quorum" &&
	has "^NIC nic1 is a e1000: only virtio-net-pci was measured" &&
	has "^tap 'hn1' \\(NIC nic1\\) is not vnet_hdr=off" &&
	has "^NIC nic2's backend 'u0' is not a -netdev tap" &&
	has "^device shm0 \\(ivshmem-plain\\) cannot be protected: memory shared with another process" &&
	has "^the VM has 2 NICs: COLO was measured with one"
tap_ok $? "unprotectable VM: refused (exit 3) with every blocker at once: the disk, the NIC model, the vnet header, the user netdev, ivshmem, two NICs"
standby start --pid "$VM_PID" "${dest[@]}" --dry-run
rc=$?
[ "$rc" = 3 ] && grep -q "^refused: *[0-9]* blockers, each to resolve" <<<"$OUT" && [ "$(grep -c '^  - ' <<<"$OUT")" -ge 6 ]
tap_ok $? "the same in text: one line per blocker"
# The real start refuses the same, all at once, before anything is touched (a VM whose disk
# is under a quorum is protected: standby-disk.t).
standby start --pid "$VM_PID" "${dest[@]}"
rc=$?
tap_diag "without --dry-run: exit $rc: $OUT $ERR"
[ "$rc" = 3 ] && grep -q "^cannot protect PID $VM_PID ([0-9]* blockers, each to resolve):" <<<"$OUT" &&
	grep -q "^  - disk disk1 (qcow2, .*plain.qcow2) is not under a quorum node" <<<"$OUT" &&
	[ "$(grep -c '^  - ' <<<"$OUT")" -ge 6 ] && [ ! -e "${QEMU_UPGRADE_STATE_DIR:-/run/qemu-upgrade}/standby-$VM_PID.json" ]
tap_ok $? "standby start without --dry-run: refused (exit 3) with the same blockers, the disk among them, no state left"
untouched "unprotectable VM"
vm_stop

# 6. QEMU 7.2: refused with what was measured on it, nothing asked of COLO.
QEMU=/usr/bin/qemu-system-x86_64 VM_WRAP="ip netns exec $REMOTE_NS_A" vm_start standby-72 ||
	{ echo "Bail out! the 7.2 VM did not start"; exit 1; }
vm_wait_ready || { echo "Bail out! the 7.2 guest did not come up"; exit 1; }
OBJECTS=$(objects)
standby start --pid "$VM_PID" "${dest[@]}" --dry-run --json
rc=$?
tap_diag "7.2: exit $rc: $(jq -c .refusals <<<"$OUT")"
[ "$rc" = 3 ] && has "^QEMU 7\\.2\\.[0-9]+ cannot be protected: COLO's secondary aborts loading the first checkpoint \\(memory_region_add_subregion_common" &&
	has "standby runs on QEMU 11.1 only" && [ "$(jq -r .remote_qemu_version <<<"$OUT")" = "$(jq -r .qemu_version <<<"$OUT")" ]
tap_ok $? "7.2 VM: refused (exit 3) with the measured reason and what to do"
untouched "7.2 VM"
[ -z "$(remote_qemus)" ] && kill -0 "$REMOTE_AGENT"
tap_ok $? "B: no QEMU, the agent still serving"
tap_done
