#!/usr/bin/env bash
# --remote ssh://: a real sshd on host B (its own config, host key and root's authorized key;
# no ForceCommand: what runs there is the tool's own remote command, `qemu-upgrade agent
# --stdio`, found on sshd's PATH), the tool on host A given a key and a known_hosts file
# through QEMU_UPGRADE_SSH. Before anything runs, a hostile URI is refused; `check --remote
# ssh://` reaches the agent; a host key that does not match is ssh's complaint, named, and the
# VM is untouched; the agent's session killed mid-upgrade leaves B clean and the VM running on
# A. Then a VM with a tap and a qcow2 disk checking its own memory moves over ssh to B's IPv6
# address (ssh://root@[fd00:77::2]:PORT: the agent takes that address from SSH_CONNECTION for
# the migration and the NBD export), RAM and disk over QEMU's TLS keyed by a PSK sent inside
# ssh: the guest is clean there, nothing of it stays on A, and no agent process stays on B.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"

[ -x /usr/sbin/sshd ] || { echo "1..0 # SKIP no sshd (openssh-server; tests/install-deps.sh installs it)"; exit 0; }
tap_plan 24
tls_before=$(ls -d /run/qemu-upgrade-tls-* 2>/dev/null)
remote_hosts || { echo "Bail out! cannot create the two network namespaces"; exit 1; }

vm_guest_build || exit 1
dir=$(mktemp -d /tmp/vm-remote-ssh.XXXXXX) && _vm_paths+=("$dir")
qemu-img create -q -f qcow2 "$dir/disk.qcow2" 32M
qemu-io -f qcow2 -c 'write -P 0x5a 0 1M' -c 'write -P 0xc3 20M 1M' "$dir/disk.qcow2" >/dev/null
ip netns exec "$REMOTE_NS_A" "$QEMU" -accel tcg -machine q35,memory-backend=mem0 \
	-object memory-backend-memfd,id=mem0,size=256M,share=on -m 256M -smp 1 -nodefaults -display none \
	-kernel "$VM_KERNEL" -initrd "$VM_INITRD" \
	-append "$VM_CMDLINE memcheck_mib=32 net_ip=10.0.2.15/24" \
	-chardev "file,id=serial0,path=$dir/serial.log" -serial chardev:serial0 \
	-qmp "unix:$dir/qmp.sock,server=on,wait=off" -daemonize -pidfile "$dir/qemu.pid" \
	-netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:09 \
	-drive "file=$dir/disk.qcow2,format=qcow2,if=virtio,id=disk0" 2>"$dir/qemu.err" || { cat "$dir/qemu.err" >&2; exit 1; }
VM_PID=$(cat "$dir/qemu.pid") && vm_track_pid "$VM_PID"
VM_DIR=$dir VM_SERIAL=$dir/serial.log VM_QMP=$dir/qmp.sock
ip -n "$REMOTE_NS_A" addr add 10.0.2.1/24 dev tap0 && ip -n "$REMOTE_NS_A" link set tap0 up
ip -n "$REMOTE_NS_B" tuntap add dev tap0 mode tap && ip -n "$REMOTE_NS_B" addr add 10.0.2.1/24 dev tap0 &&
	ip -n "$REMOTE_NS_B" link set tap0 up
vm_wait_ready || exit 1
old=$VM_PID

# B has an IPv6 address too (no duplicate address detection: usable at once).
REMOTE_B_IP6=fd00:77::2
ip -n "$REMOTE_NS_A" addr add fd00:77::1/64 dev "qua$$" nodad &&
	ip -n "$REMOTE_NS_B" addr add "$REMOTE_B_IP6/64" dev "qub$$" nodad || { echo "Bail out! no IPv6 on the veth"; exit 1; }
# The agent's policy (root allowed, the VM's directory, the QEMU it runs), given by sshd.
remote_agent_conf "$VM_DIR" || exit 1
REMOTE_SSHD_ENV="QEMU_UPGRADE_CONF=$REMOTE_AGENT_CONF" remote_sshd_start "$VM_DIR" ||
	{ echo "Bail out! sshd did not start on B"; exit 1; }

# 1. Hostile URIs: refused before ssh runs (the command that would stand in for ssh leaves a
# mark when run), exit 2, the part at fault named.
mark=$REMOTE_SSH_DIR/ssh-ran
bad=0
for uri in "ssh://-oProxyCommand=touch\${IFS}$REMOTE_SSH_DIR/pwned" "ssh://root@-oProxyCommand=sh" \
	"ssh://root@$REMOTE_B_IP:22;id" "ssh://-l@$REMOTE_B_IP" "ssh://root@[::1" "ssh://a b@$REMOTE_B_IP"; do
	QEMU_UPGRADE_SSH="echo >>$mark" ip netns exec "$REMOTE_NS_A" "$QU_BIN" --pid "$VM_PID" --remote "$uri" \
		--copy-storage --quiet 2>"$VM_DIR/err" >/dev/null
	rc=$?
	tap_diag "$uri: exit $rc: $(cat "$VM_DIR/err")"
	{ [ "$rc" = 2 ] && grep -q "is not\|goes in brackets\|must be a number" "$VM_DIR/err"; } || bad=$((bad + 1))
done
[ "$bad" = 0 ] && [ ! -e "$mark" ] && [ ! -e "$REMOTE_SSH_DIR/pwned" ] && [ "$(vm_runstate)" = running ]
tap_ok $? "hostile ssh:// URIs (an option for a host or user, a shell word, a broken address) are refused before ssh runs ($bad not)"
QEMU_UPGRADE_SSH="echo >>$mark" ip netns exec "$REMOTE_NS_A" "$QU_BIN" check --remote "ssh://-oProxyCommand=sh" >/dev/null 2>"$VM_DIR/err"
rc=$?
[ "$rc" = 2 ] && [ ! -e "$mark" ] && grep -q "is not a host name" "$VM_DIR/err"
tap_ok $? "check --remote refuses it too, before ssh runs (exit $rc: $(cat "$VM_DIR/err"))"

# 2. check --remote ssh://: the agent answers through ssh, and names the QEMU there.
out=$(ip netns exec "$REMOTE_NS_A" "$QU_BIN" check --remote "$REMOTE_SSH_URI")
rc=$?
tap_diag "check --remote: exit $rc: $(grep 'other host' <<<"$out")"
[ "$rc" = 0 ] && grep -q '^yes  agent on the other host .*reachable over ssh' <<<"$out" &&
	grep -q '^yes  QEMU on the other host .*QEMU 7\.2' <<<"$out"
tap_ok $? "check --remote ssh://: the agent reached over ssh, and QEMU 7.2 there"
for _ in $(seq 100); do [ -z "$(remote_agents)" ] && break; sleep 0.1; done
tap_is "$(remote_agents)" "" "no agent process is left on B after the check"

# 2a. The agent's policy holds over ssh as over TCP: without agent_allow_root the root VM is
# refused there before anything is made (sshd's agent reads the file at each session's start).
cp "$REMOTE_AGENT_CONF" "$REMOTE_AGENT_CONF.ok"
grep -v agent_allow_root "$REMOTE_AGENT_CONF.ok" >"$REMOTE_AGENT_CONF"
remote_upgrade --copy-storage
rc=$?
tap_diag "no agent_allow_root: exit $rc: $(cat "$VM_DIR/err")"
[ "$rc" = 3 ] && grep -qF "agent_allow_root = yes" "$VM_DIR/err" && [ "$(vm_runstate)" = running ] &&
	[ -z "$(remote_qemus)" ] && [ ! -e "/proc/$REMOTE_SSHD/root$VM_DIR/disk.qcow2" ]
tap_ok $? "the agent's policy applies over ssh: a root VM without agent_allow_root is refused (exit 3), nothing made on B"
mv "$REMOTE_AGENT_CONF.ok" "$REMOTE_AGENT_CONF"

# 3. A host key that is not the one known: ssh refuses, the tool says what ssh said.
other=$REMOTE_SSH_DIR/other_key
ssh-keygen -q -t ed25519 -N '' -f "$other"
echo "[$REMOTE_B_IP]:$REMOTE_SSH_PORT $(cut -d' ' -f1,2 "$other.pub")" >"$REMOTE_SSH_DIR/known_hosts.bad"
QEMU_UPGRADE_SSH=${QEMU_UPGRADE_SSH/known_hosts/known_hosts.bad} remote_upgrade --copy-storage
rc=$?
tap_diag "wrong host key: exit $rc: $(cat "$VM_DIR/err")"
[ "$rc" = 2 ] && grep -q "Host key verification failed" "$VM_DIR/err"
tap_ok $? "a host key that does not match: exit 2, and the error names ssh's complaint"
[ "$(vm_runstate)" = running ] && [ "$VM_PID" = "$old" ] && [ -z "$(remote_qemus)" ] && [ -z "$(remote_agents)" ]
tap_ok $? "the VM runs on A untouched; nothing started on B"

# 4. The agent's session process dies (killed, as the OOM killer would) while the tool waits
# with the new QEMU started on B: the tool rolls back; the agent's parent stops that QEMU and
# removes what the session made before the connection ends.
(QEMU_UPGRADE_FAULT=3:pause=4000 remote_upgrade --copy-storage; rc=$?; echo "$REPORT" >"$VM_DIR/report"; exit $rc) &
tool=$!
session=
for _ in $(seq 300); do
	session=$(remote_agent_pair | cut -d' ' -f2)
	[ -n "$session" ] && [ -n "$(remote_qemus)" ] && break
	sleep 0.1
done
tap_diag "session $session, new QEMU $(remote_qemus)"
# Into the tool's pause (after the start and the disk copy; were it slower, the kill lands
# during the start, and the outcome must be the same).
sleep 2
[ -n "$session" ] && kill -KILL "$session"
wait "$tool"
rc=$?
tap_diag "session killed: exit $rc: $(cat "$VM_DIR/err")"
[ "$rc" = 1 ] && [ "$(vm_runstate)" = running ] && [ "$VM_PID" = "$old" ]
tap_ok $? "the agent's session killed mid-upgrade: rolled back (exit 1), the VM runs on A"
tap_diag "rolled back: $(json_get "$(cat "$VM_DIR/report")" rolled_back)"
json_get "$(cat "$VM_DIR/report")" rolled_back | grep -q "agent unreachable.*it said: .*session $session ended without cleaning up: its new QEMU stopped"
tap_ok $? "the report carries the agent's last words over ssh: it stopped that session's QEMU"
for _ in $(seq 100); do [ -z "$(remote_qemus)" ] && [ -z "$(remote_agents)" ] && break; sleep 0.1; done
leaked=$(remote_tls_leaks "$tls_before")
tap_diag "TLS keys left: ${leaked:-none}"
[ -z "$(remote_qemus)" ] && [ ! -e "/proc/$REMOTE_SSHD/root$VM_DIR/disk.qcow2" ] &&
	[ ! -e "/proc/$REMOTE_SSHD/root$VM_DIR/qmp.sock" ] && [ -z "$(remote_agents)" ] && [ -z "$leaked" ]
tap_ok $? "nothing is left on B: no QEMU, no image, no socket, no TLS key, no agent process"

# 4a. The agent's relaying parent dies instead: its session sees the end of the stream and
# undoes what it made itself.
QEMU_UPGRADE_FAULT=3:pause=4000 remote_upgrade --copy-storage &
tool=$!
parent=
for _ in $(seq 300); do
	parent=$(remote_agent_pair | cut -d' ' -f1)
	[ -n "$parent" ] && [ -n "$(remote_qemus)" ] && break
	sleep 0.1
done
tap_diag "agent $parent, new QEMU $(remote_qemus)"
sleep 2
[ -n "$parent" ] && kill -KILL "$parent"
wait "$tool"
rc=$?
tap_diag "agent parent killed: exit $rc: $(cat "$VM_DIR/err")"
for _ in $(seq 100); do [ -z "$(remote_qemus)" ] && [ -z "$(remote_agents)" ] && break; sleep 0.1; done
[ "$rc" = 1 ] && [ "$(vm_runstate)" = running ] && [ -z "$(remote_qemus)" ] &&
	[ ! -e "/proc/$REMOTE_SSHD/root$VM_DIR/disk.qcow2" ] && [ -z "$(remote_agents)" ] &&
	[ -z "$(remote_tls_leaks "$tls_before")" ]
tap_ok $? "the agent's parent killed mid-upgrade: rolled back, the VM runs on A, B is clean (no TLS key either)"

# 5. The move, over ssh to B's IPv6 address.
REMOTE_SSH_URI="ssh://root@[$REMOTE_B_IP6]:$REMOTE_SSH_PORT"
vm_qmp "$VM_QMP" '{"execute":"human-monitor-command","arguments":{"command-line":"qemu-io disk0 \"write -P 0x77 8M 512k\""}}' >/dev/null
remote_upgrade --copy-storage
rc=$?
tap_diag "move: exit $rc: $REPORT $(cat "$VM_DIR/err")"
tap_is "$(json_get "$REPORT" result)" upgraded "the VM moved to host B over ssh:// to its IPv6 address (migration and NBD there too)"
[ "$VM_PID" != "$old" ] || { echo "Bail out! the VM did not move"; exit 1; }
[ "$(json_get "$REPORT" remote)" = "$REMOTE_SSH_URI" ] && grep -q "Accepted publickey for root from fd00:77::1 " "$REMOTE_SSHD_LOG"
tap_ok $? "the report names the ssh:// destination, and sshd let the tool in over IPv6"
tap_check "the old QEMU is gone" proc_gone "$old"
[ "$(readlink "/proc/$VM_PID/ns/net")" = "$(ip netns exec "$REMOTE_NS_B" readlink /proc/self/ns/net)" ]
tap_ok $? "the new QEMU runs in host B's network namespace"
[ ! -e "$VM_DIR/qmp.sock" ] && [ ! -e "$VM_DIR/qemu.pid" ] && [ -z "$(remote_qemus "$REMOTE_NS_A")" ]
tap_ok $? "nothing of the VM is left on A (QEMU, QMP socket, pidfile)"
tap_is "$(vm_runstate "$VM_QMP")" running "the VM's QMP socket on B answers: running"
leaked=$(remote_tls_leaks "$tls_before")
[ "$(json_get "$REPORT" tls)" = true ] &&
	vm_qmp "$VM_QMP" '{"execute":"query-migrate-parameters"}' | grep -q '"tls-creds": ""' && [ -z "$leaked" ]
tap_ok $? "RAM came over TLS (the PSK sent inside ssh); no key file and no TLS setting is left"
for _ in $(seq 100); do [ -z "$(remote_agents)" ] && break; sleep 0.1; done
tap_is "$(remote_agents)" "" "no agent process is left on B after the session"
vm_memcheck_progress 60
tap_ok $? "the guest makes progress on B"
tap_is "$(vm_memcheck_errors)" 0 "the guest reports no memory corruption"
qemu-img compare -U -f qcow2 -F qcow2 "$VM_DIR/disk.qcow2" "/proc/$VM_PID/root$VM_DIR/disk.qcow2" >/dev/null
tap_ok $? "the disk on B is the disk on A, block for block (copied over NBD with TLS)"
ip netns exec "$REMOTE_NS_B" ping -c 3 -W 5 10.0.2.15 >/dev/null
tap_ok $? "the guest answers pings on host B's tap"
grep -q "Starting session: command for root" "$REMOTE_SSHD_LOG" && ! grep -qi "forcecommand" "$REMOTE_SSH_DIR/sshd_config"
tap_ok $? "sshd ran the tool's own command (no ForceCommand in its config)"
tap_done
