#!/usr/bin/env bash
# The agent's policy (docs/remote.md, "Authorization"): host B's agent reads it from its
# configuration file at each session's start, and a launch outside it is refused before
# anything is made there. Each of these is refused with exit 3 and the reason (and the
# setting to change) in the tool's error, with no file and no QEMU on B and the VM on A
# running with its memory checker clean: a binary outside agent_binaries; a VM that runs as
# root without agent_allow_root; a user not in agent_users; a socket, a log, a pidfile and a
# disk image outside agent_dirs; a socket reached through a link the VM's user made on B;
# everything at once, in one answer; a socket file on B that something listens on (never
# replaced). Then a root VM moves inside it, over the socket file that listener left behind
# once it died (nobody listens: replaced), and a VM of user nobody.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"

tap_plan 30
remote_hosts || { echo "Bail out! cannot create the two network namespaces"; exit 1; }
vm_guest_build || exit 1

# VM 1 runs as root: its directory from vm_start, and a second one (aux) with its disk and a
# second monitor socket in aux/run.
aux=$(mktemp -d /tmp/vm-rpol-aux.XXXXXX) && _vm_paths+=("$aux") && mkdir "$aux/run"
qemu-img create -q -f qcow2 "$aux/disk.qcow2" 16M
qemu-io -f qcow2 -c 'write -P 0x5a 0 1M' "$aux/disk.qcow2" >/dev/null
VM_WRAP="ip netns exec $REMOTE_NS_A" vm_start rpol-root \
	-chardev "socket,id=aux,path=$aux/run/aux.sock,server=on,wait=off" -mon chardev=aux,mode=control \
	-drive "file=$aux/disk.qcow2,format=qcow2,if=virtio,id=disk0" || exit 1
vm_wait_ready || exit 1
root_vm=("$VM_PID" "$VM_DIR" "$VM_QMP" "$VM_SERIAL")
# VM 2 runs as nobody.
VM_OWNER=nobody VM_WRAP="ip netns exec $REMOTE_NS_A setpriv --reuid=65534 --regid=65534 --clear-groups" \
	vm_start rpol-nobody || exit 1
vm_wait_ready || exit 1
nobody_vm=("$VM_PID" "$VM_DIR" "$VM_QMP" "$VM_SERIAL")

use_vm() { VM_PID=$1 VM_DIR=$2 VM_QMP=$3 VM_SERIAL=$4; }

# The agent: its policy in a file the test rewrites between sessions.
pol=$(mktemp) && _vm_paths+=("$pol")
policy() { printf '%s\n' "$@" "agent_tls_clients = $REMOTE_CLIENT_NAME" >"$pol"; } # the tool's certificate, always
all_dirs="agent_dirs = ${root_vm[1]} $aux ${nobody_vm[1]}"
policy "$all_dirs" "agent_allow_root = yes"
REMOTE_AGENT_POLICY=$pol remote_agent_start "${root_vm[1]}" "$aux" "${nobody_vm[1]}" ||
	{ echo "Bail out! the agent did not start"; exit 1; }
B=/proc/$REMOTE_AGENT/root
mkdir "$B$aux/run" # as on A
# What the VM's user could point a link to on B: must stay empty.
elsewhere=$(mktemp -d /tmp/rpol-elsewhere.XXXXXX) && _vm_paths+=("$elsewhere")

# untouched NAME: the refusal left everything as it was: no QEMU and no file on B (beyond
# aux/run, which the test made), the VM on A the same process, running, its memory clean.
untouched() {
	local made
	made=$(find "$B${root_vm[1]}" "$B$aux" "$B${nobody_vm[1]}" "$elsewhere" -mindepth 1 ! -path "$B$aux/run" 2>&1)
	tap_diag "$1: on B: [${made}] QEMUs [$(remote_qemus)]; on A: $(vm_runstate), $(vm_memcheck_status)"
	[ -z "$made" ] && [ -z "$(remote_qemus)" ] && kill -0 "$VM_PID" && [ "$(vm_runstate)" = running ] &&
		vm_memcheck_progress 30 && [ "$(vm_memcheck_errors)" = 0 ]
	tap_ok $? "$1: nothing made on B, the VM runs on A and its memory is clean"
}

# refused NAME ARGS...: the move is refused with exit 3; the error is in $VM_DIR/err.
refused() {
	local name=$1 rc
	shift
	remote_upgrade "$@"
	rc=$?
	tap_diag "$name: exit $rc: $(cat "$VM_DIR/err")"
	tap_is "$rc" 3 "$name: refused before the VM is touched (exit 3)"
}

said() { grep -qF -- "$1" "$VM_DIR/err"; }

# 1. A binary outside agent_binaries (everything else allowed).
use_vm "${root_vm[@]}"
policy "$all_dirs" "agent_allow_root = yes" "agent_binaries = /opt/qemu/bin/qemu-system-x86_64"
refused "a binary outside the policy" --copy-storage --new-binary /usr/bin/qemu-system-x86_64
said "may not start /usr/bin/qemu-system-x86_64: it is not in agent_binaries in $pol; add it there" &&
	! said "blockers"
tap_ok $? "the error names the binary and agent_binaries in the agent's file, and nothing else"
untouched "binary"

# 2. Root, without agent_allow_root (the default binaries: /usr/bin/qemu-system-*).
policy "$all_dirs"
refused "root without agent_allow_root" --copy-storage
said "the VM's QEMU runs as root (uid 0): the agent starts QEMU as root only with 'agent_allow_root = yes' in $pol"
tap_ok $? "the error says root needs agent_allow_root = yes"
untouched "root"

# 3. A user not in agent_users.
use_vm "${nobody_vm[@]}"
policy "$all_dirs" "agent_users = daemon"
refused "a user not listed"
said "runs as uid 65534 (nobody), which is not in agent_users in $pol: add nobody there"
tap_ok $? "the error names the user and agent_users"
untouched "user"

# 4. Paths outside agent_dirs: the monitor socket, the serial log and the pidfile (VM 1's
# directory), and the disk image to copy; only aux/run is allowed.
use_vm "${root_vm[@]}"
policy "agent_dirs = $aux/run" "agent_allow_root = yes"
refused "paths outside the allowed directories" --copy-storage
for what in "listening socket:${root_vm[1]}/qmp.sock" "chardev file:${root_vm[1]}/serial.log" \
	"pidfile:${root_vm[1]}/qemu.pid" "disk image:$aux/disk.qcow2"; do
	path=${what#*:}
	said "the ${what%%:*} $path is in ${path%/*}, outside" || { tap_diag "not said: $what"; false; } || break
done && said "outside the directories the agent may make files in (agent_dirs in $pol: $aux/run)" &&
	said "4 blockers"
tap_ok $? "the socket, the log, the pidfile and the image are each named, with agent_dirs, in one answer"
untouched "paths"

# 5. A socket reached through a link that the VM's user made on B (aux/run -> elsewhere).
policy "$all_dirs" "agent_allow_root = yes"
rmdir "$B$aux/run" && ln -s "$elsewhere" "$B$aux/run" && chown -h nobody "$B$aux/run"
refused "a socket through a link" --copy-storage
said "the listening socket is refused: $aux/run/aux.sock: 'run' in $aux is a symbolic link made by uid 65534"
tap_ok $? "the error says the link is not followed"
untouched "link"
rm "$B$aux/run" && mkdir "$B$aux/run"

# 6. Everything at once: one answer names all of it.
policy "agent_binaries = /opt/qemu/bin/qemu-system-x86_64"
refused "everything at once" --copy-storage
said "not in agent_binaries" && said "agent_allow_root = yes" && said "(agent_dirs in $pol: none set)" &&
	said "disk image $aux/disk.qcow2" && said "blockers"
tap_ok $? "the binary, the user and every path are refused in one answer"
untouched "all at once"

# 6b. A socket file at the second monitor's path on B that a live process listens on: never
# replaced; the move fails before any QEMU starts there, and says what to do.
policy "$all_dirs" "agent_allow_root = yes"
nsenter -t "$REMOTE_AGENT" -m python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(); print("up", flush=True); time.sleep(600)' \
	"$aux/run/aux.sock" >"$VM_DIR/listener.out" 2>&1 &
listener=$!
vm_track_pid "$listener"
for _ in $(seq 100); do grep -q up "$VM_DIR/listener.out" && break; sleep 0.1; done
remote_upgrade --copy-storage
rc=$?
tap_diag "a live socket on B: exit $rc: $(cat "$VM_DIR/err")"
[ "$rc" != 0 ] && [ "$rc" != 4 ] && said "$aux/run/aux.sock exists on this host already and something listens on it"
tap_ok $? "a socket something listens on is not replaced: the move fails (exit $rc), naming it"
kill "$listener" && wait "$listener" 2>/dev/null
made=$(find "$B${root_vm[1]}" "$B$aux" -mindepth 1 ! -path "$B$aux/run" ! -path "$B$aux/run/aux.sock" 2>&1)
[ -z "$made" ] && [ -S "$B$aux/run/aux.sock" ] && [ -z "$(remote_qemus)" ] && [ "$(vm_runstate)" = running ] &&
	vm_memcheck_progress 30 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "nothing else made on B ([$made]), no QEMU there, the VM runs on A, clean; the listener's file stays, now stale"

# 7. Inside the policy, the root VM moves (disk copied into an image the agent makes); the
# stale socket file at its second monitor's path is replaced.
old=$VM_PID
remote_upgrade --copy-storage
rc=$?
tap_diag "move: exit $rc: $REPORT $(cat "${root_vm[1]}/err")"
tap_is "$(json_get "$REPORT" result)" upgraded "inside the policy, the root VM moves to B"
[ "$VM_PID" != "$old" ] || { echo "Bail out! the VM did not move"; exit 1; }
tap_check "its old QEMU on A is gone" proc_gone "$old"
tap_is "$(vm_runstate "$VM_QMP")" running "its QMP socket on B answers: running"
# The second monitor came through its listening socket in aux/run: B's, the VM's user's.
[ -S "/proc/$VM_PID/root$aux/run/aux.sock" ] && [ "$(stat -c %u "/proc/$VM_PID/root$aux/run/aux.sock")" = 0 ] &&
	grep -q "$aux/run/aux.sock: nobody listens on it (a QEMU that died left it): replaced" "$REMOTE_AGENT_LOG"
tap_ok $? "its second monitor's socket is on B at the same path, made over the stale one"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest makes progress on B and its memory is clean"
qemu-img compare -U -f qcow2 -F qcow2 "$aux/disk.qcow2" "/proc/$VM_PID/root$aux/disk.qcow2" >/dev/null
tap_ok $? "its disk on B is the disk on A"

# 8. The VM of user nobody moves once agent_users names it; what the agent made on B for it
# is nobody's.
use_vm "${nobody_vm[@]}"
policy "$all_dirs" "agent_users = nobody"
old=$VM_PID
remote_upgrade
rc=$?
tap_diag "move as nobody: exit $rc: $REPORT $(cat "${nobody_vm[1]}/err")"
tap_is "$(json_get "$REPORT" result)" upgraded "inside the policy, the VM of user nobody moves to B"
[ "$VM_PID" != "$old" ] || { echo "Bail out! the VM of nobody did not move"; exit 1; }
tap_is "$(stat -c %u "/proc/$VM_PID/status")" 65534 "its new QEMU on B runs as nobody"
tap_is "$(stat -c %U "/proc/$VM_PID/root${nobody_vm[1]}/qmp.sock")" nobody "its QMP socket on B is nobody's"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest makes progress on B and its memory is clean"
tap_done
