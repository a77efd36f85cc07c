#!/usr/bin/env bash
# cpr-exec (--keep-pid, QEMU >= 10.2: Debian sid's 11.1.3 here): the old QEMU saves its device
# state and execs the new binary in its own process. A VM with memfd RAM,
# -machine aux-ram-share=on and a tap QEMU opened by name (Proxmox's form) is upgraded twice
# while the host pings it: the PID stays, the tap is the same descriptor (fd=N, same
# ifindex), the guest's memory checker stays clean, QMP answers at its path and the pidfile
# names the PID. Without --keep-pid the plan says that the PID would change and how to keep it.
# A VM under -sandbox spawn=deny is refused before anything is touched. Failures: before the
# exec the usual rollback (fault point 3: the old image runs on, its mode back to normal); an
# exec that fails (a missing file) is undone by QEMU itself; past the exec (fault point 5,
# the tool failing or killed) the same PID goes on to load the state, by the tool or by its
# guardian. A VM that runs as nobody keeps its PID, and rolls back as nobody. Nothing is left
# in the state directory.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/net.sh"

# QEMU 11.1 comes from Debian sid (tests/qemu-versions/fetch.sh); without it, nothing here runs.
cache=/var/cache/qemu-upgrade-tests
mkdir -p "$cache"
QS=$( (flock 9; "$QU_ROOT/tests/qemu-versions/fetch.sh" sid "$cache") 9>"$cache/.lock" 2>"$cache/.fetch-sid.err" | tail -n 1)
if ! [ -x "$QS" ]; then
	echo "1..0 # SKIP QEMU 11.1 (Debian sid, the only QEMU >= 10.2 with cpr-exec) cannot be fetched: $(tail -n 1 "$cache/.fetch-sid.err")"
	exit 0
fi
export QEMU=$QS VM_MEM=256M VM_RAM=memfd

tap_plan 52
# Options that cannot go with it: usage errors, before any VM is looked at.
e1=$("$QU_BIN" --all --keep-pid 2>&1); r1=$?
e2=$("$QU_BIN" --pid 1 --keep-pid --remote ssh://nowhere 2>&1); r2=$?
e3=$("$QU_BIN" --pid 1 --keep-pid --allow-copy 2>&1); r3=$?
[ "$r1$r2$r3" = 222 ] && grep -q "keep-pid" <<<"$e1" && grep -q "does not go with --remote" <<<"$e2" &&
	grep -q "never copies" <<<"$e3"
tap_ok $? "--keep-pid with --all, --remote or --allow-copy: usage errors (exit 2) that say why"
ns=qu-cprx-$$
ip netns add "$ns" || { echo "Bail out! cannot create a network namespace"; exit 1; }
vm_defer "ip netns del $ns"
up=$(mktemp)
_vm_paths+=("$up")
printf '#!/bin/sh\nip link set "$1" up && ip addr add 10.0.7.1/24 dev "$1"\n' >"$up"
chmod +x "$up"

VM_WRAP="ip netns exec $ns" VM_APPEND="net_ip=10.0.7.15/24" VM_MEMCHECK_MIB=64 \
	vm_start cprx -machine aux-ram-share=on -netdev "type=tap,id=net0,ifname=cxt0,script=$up,downscript=no" \
	-device virtio-net-pci,mac=52:54:00:00:00:17,netdev=net0 || exit 1
vm_wait_ready 120 || exit 1
export QEMU_UPGRADE_STATE_DIR=$VM_DIR/state
pid=$VM_PID

# state_clean: the state directory is empty (journal, lock, saved state), waiting up to 30 s
# for a guardian.
state_clean() {
	local i
	for i in $(seq 300); do
		[ -z "$(ls -A "$QEMU_UPGRADE_STATE_DIR" 2>/dev/null)" ] && return 0
		sleep 0.1
	done
	tap_diag "left in the state directory: $(ls -A "$QEMU_UPGRADE_STATE_DIR" | tr '\n' ' ')"
	return 1
}
# well: PID $1 alone runs the guest, running, QMP at its path, the pidfile names it, the guest
# checker clean and progressing.
well() {
	[ "$(qemu_pids_for "$VM_DIR")" = "$1" ] && [ "$(vm_runstate)" = running ] &&
		[ "$(cat "$VM_DIR/qemu.pid")" = "$1" ] && vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
}
mode() { vm_qmp "$VM_QMP" '{"execute":"query-migrate-parameters"}' | jq -r .return.mode; }
fd_link() { readlink "/proc/$pid/fd/$1"; }

plan=$("$QU_BIN" inspect --pid "$pid" --json --quiet)
[ "$(json_get "$plan" strategy)" = cpr-transfer ] && [ "$(json_get "$plan" pid_kept)" = false ] &&
	grep -q -- "--keep-pid would keep it" <<<"$(json_get "$plan" pid_note)"
tap_ok $? "without --keep-pid: cpr-transfer, and the plan says the PID would change and --keep-pid keeps it"
plan=$("$QU_BIN" inspect --pid "$pid" --keep-pid --json --quiet)
argv=$(jq -r '.new_argv | join(" ")' <<<"$plan")
tapfd=$(jq -r '.descriptors[] | select(.kind=="tap") | .old_fd' <<<"$plan")
tap_diag "plan: $argv"
[ "$(json_get "$plan" strategy)" = cpr-exec ] && [ "$(json_get "$plan" pid_kept)" = true ] &&
	[[ $argv == *"type=tap,id=net0,fd=$tapfd "* ]] && [[ $argv != *-daemonize* ]] &&
	[[ $argv == *"-incoming defer"* ]] && [[ $argv == *"append=on"* ]] &&
	[ "$(jq -r '.descriptors[] | select(.kind=="tap") | .new_fd' <<<"$plan")" = "$tapfd" ]
tap_ok $? "--keep-pid: cpr-exec, the tap kept at its number $tapfd (fd=$tapfd), no -daemonize, -incoming defer, append=on"
ifindex=$(ip -n "$ns" -o link show cxt0 | cut -d: -f1)
tapdev=$(fd_link "$tapfd")

for round in 1 2; do
	upgrade_pinging "$ns" cxt0 "cpr-exec round $round" "$VM_DIR" 10.0.7.15 --keep-pid
	tap_is "$(cat "$VM_DIR/qemu.pid")" "$pid" "round $round: the PID is kept ($pid)"
	report=$(cat "$VM_DIR/report")
	[ "$(json_get "$report" strategy)" = cpr-exec ] && [ "$(json_get "$report" new_pid)" = "$pid" ] &&
		[ "$(json_get "$report" ram_copied_bytes)" = 0 ]
	tap_ok $? "round $round: the report says cpr-exec, new PID = old PID, nothing copied (pause $(json_get "$report" pause_ms) ms)"
	well "$pid"
	tap_ok $? "round $round: one QEMU, running, QMP at its path, the pidfile names $pid, the guest clean"
	[ "$(fd_link "$tapfd")" = "$tapdev" ] && [ "$(ip -n "$ns" -o link show cxt0 | cut -d: -f1)" = "$ifindex" ] &&
		tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qx "type=tap,id=net0,fd=$tapfd"
	tap_ok $? "round $round: the same tap descriptor ($tapdev at fd $tapfd, ifindex $ifindex), given as fd=$tapfd"
	[ "$(mode)" = normal ] && state_clean
	tap_ok $? "round $round: migration mode back to normal; nothing left in the state directory"
done

# Before the exec (fault point 3: the mode set, the state file given, no migrate yet): the
# usual rollback, in the same process.
err=$(QEMU_UPGRADE_FAULT=3 "$QU_BIN" --pid "$pid" --keep-pid --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "fault 3: exit $rc: $err"
[ "$rc" = 1 ] && well "$pid" && [ "$(mode)" = normal ] && state_clean
tap_ok $? "a failure before the exec rolls back: the old image runs on, mode normal, state directory empty"

# The exec fails (no such file): QEMU resumes the old image by itself; the tool restores its
# settings and says why.
err=$(QEMU_UPGRADE_CPR_EXEC_PROGRAM=/nonexistent/qemu-system-x86_64 "$QU_BIN" --pid "$pid" --keep-pid --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "missing program: exit $rc: $err"
[ "$rc" = 1 ] && grep -q "No such file or directory" <<<"$err"
tap_ok $? "an exec of a missing file fails with QEMU's reason (exit 1)"
well "$pid" && [ "$(mode)" = normal ] && state_clean
tap_ok $? "and the old image runs on in PID $pid, mode normal, nothing left"
ip netns exec "$ns" ping -c 3 -W 5 10.0.7.15 >/dev/null
tap_ok $? "the guest still answers on its tap"

# Past the exec (fault point 5: the new image waits for its state): the tool's failure path
# loads it in the same PID and says the upgrade went through; killed there, its guardian does.
# At fault point 6 the new image has loaded the state and runs: forward again.
for spec in 5 5:kill 6 6:kill; do
	how=error
	[[ $spec == *:kill ]] && how=kill
	report=$(QEMU_UPGRADE_FAULT=$spec "$QU_BIN" --pid "$pid" --keep-pid --json --quiet 2>"$VM_DIR/err")
	rc=$?
	tap_diag "fault $spec: exit $rc: $(tr '\n' ' ' <"$VM_DIR/err" | cut -c1-300)"
	if [ "$how" = kill ]; then [ "$rc" = 137 ]; else [ "$rc" = 0 ] && [ "$(json_get "$report" result)" = upgraded ]; fi
	tap_ok $? "fault $spec past the exec: exit $([ "$how" = kill ] && echo 137 || echo 0)"
	state_clean && well "$pid" && [ "$(mode)" = normal ]
	tap_ok $? "fault $spec: settled forward in the same PID $pid: running, clean, mode normal, state directory empty"
done

# Past the exec the new image fails: it exits at once (the exec'd program is /bin/false), or
# cannot load the state (one vCPU more than the state has). The old binary then starts as a
# new process on the tool's copies of guest RAM and the tap and loads the saved state: the
# guest runs on, unharmed, in a new PID (the PID is not kept: said so).
for how in exits load; do
	old=$pid
	if [ "$how" = exits ]; then
		err=$(QEMU_UPGRADE_CPR_EXEC_PROGRAM=/bin/false "$QU_BIN" --pid "$old" --keep-pid --quiet 2>&1 >/dev/null)
	else
		err=$(QEMU_UPGRADE_CPR_EXEC_APPEND="-smp 2" "$QU_BIN" --pid "$old" --keep-pid --quiet 2>&1 >/dev/null)
	fi
	rc=$?
	tap_diag "new image $how: exit $rc: $err"
	pid=$(cat "$VM_DIR/qemu.pid")
	vm_track_pid "$pid" 2>/dev/null
	[ "$rc" = 1 ] && [ "$pid" != "$old" ] && grep -q "rolled back into a new process, PID $pid: the PID was not kept" <<<"$err"
	tap_ok $? "new image $how after the exec: exit 1, rolled back into a new process $pid, and it says the PID was not kept"
	tap_diag "new image $how: owners $(qemu_pids_for "$VM_DIR" | tr '\n' ' '), run state $(vm_runstate), pidfile $(cat "$VM_DIR/qemu.pid"), mode $(mode), $(vm_memcheck_status)"
	well "$pid" && [ "$(mode)" = normal ] && state_clean && proc_gone "$old"
	tap_ok $? "new image $how: PID $pid alone runs the guest, clean, QMP at its path, pidfile right, mode normal, nothing left"
	ip netns exec "$ns" ping -c 3 -W 5 10.0.7.15 >/dev/null && [ "$(ip -n "$ns" -o link show cxt0 | cut -d: -f1)" = "$ifindex" ]
	tap_ok $? "new image $how: the guest answers on the same tap (ifindex $ifindex)"
done
upgrade_pinging "$ns" cxt0 "cpr-exec after the rollbacks" "$VM_DIR" 10.0.7.15 --keep-pid
well "$pid" && [ "$(cat "$VM_DIR/qemu.pid")" = "$pid" ]
tap_ok $? "the rolled-back VM (RAM now a file backend on its memfd) keeps its PID $pid through the next cpr-exec"

# A VM that runs as nobody: the exec runs as nobody in its own process, and a rollback's new
# QEMU (nobody too) reads the state file, root's directory's, through its own descriptor.
first=$VM_DIR
asuser=$VM_DIR/asuser.sh
printf '#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"\n' >"$asuser"
chmod +x "$asuser"
VM_OWNER=nobody VM_WRAP=$asuser vm_start cprx-nobody -machine aux-ram-share=on || exit 1
vm_wait_ready 120 || exit 1
npid=$VM_PID
vm_upgrade --keep-pid
tap_diag "as nobody: $REPORT $(cat "$VM_DIR/err")"
[ "$(json_get "$REPORT" result)" = upgraded ] && [ "$VM_PID" = "$npid" ] && [ "$(stat -c %u "/proc/$npid")" = 65534 ] && well "$npid"
tap_ok $? "a VM running as nobody keeps its PID $npid, still as nobody, clean"
err=$(QEMU_UPGRADE_CPR_EXEC_PROGRAM=/bin/false "$QU_BIN" --pid "$npid" --keep-pid --quiet 2>&1 >/dev/null)
rc=$?
VM_PID=$(cat "$VM_DIR/qemu.pid")
vm_track_pid "$VM_PID" 2>/dev/null
tap_diag "as nobody, new image exits: exit $rc: $err"
[ "$rc" = 1 ] && [ "$VM_PID" != "$npid" ] && [ "$(stat -c %u "/proc/$VM_PID")" = 65534 ] && well "$VM_PID" && [ "$(mode)" = normal ]
tap_ok $? "as nobody, a failure after the exec rolls back into a new process $VM_PID, as nobody, clean"
VM_DIR=$first VM_QMP=$first/qmp.sock VM_SERIAL=$first/serial.log

# Versions: cpr-exec came with QEMU 10.2; Debian trixie's 10.0.13 has none, on either side.
Q10=$( (flock 9; "$QU_ROOT/tests/qemu-versions/fetch.sh" trixie "$cache") 9>"$cache/.lock" 2>/dev/null | tail -n 1)
if [ -x "$Q10" ]; then
	err=$("$QU_BIN" --pid "$pid" --new-binary "$Q10" --keep-pid --quiet 2>&1 >/dev/null)
	rc=$?
	tap_diag "11.1 -> 10.0 --keep-pid: exit $rc: $err"
	[ "$rc" = 3 ] && grep -q "the new binary is QEMU 10.0" <<<"$err" && well "$pid"
	tap_ok $? "--keep-pid to a 10.0 binary: refused (exit 3), the new binary's version said, the VM untouched"
	first=$VM_DIR
	QEMU=$Q10 vm_start cprx-10 -machine aux-ram-share=on || exit 1
	err=$("$QU_BIN" --pid "$VM_PID" --new-binary "$QS" --keep-pid --quiet 2>&1 >/dev/null)
	rc=$?
	tap_diag "10.0 -> 11.1 --keep-pid: exit $rc: $err"
	[ "$rc" = 3 ] && grep -q "the running QEMU is 10.0" <<<"$err"
	tap_ok $? "--keep-pid of a VM on 10.0: refused (exit 3), the running QEMU's version said"
	vm_stop
	VM_DIR=$first VM_QMP=$first/qmp.sock VM_SERIAL=$first/serial.log
else
	for _ in 1 2; do _tap_n=$((_tap_n + 1)); echo "ok $_tap_n # SKIP QEMU 10.0 (Debian trixie) cannot be fetched"; done
fi

# What the guest's owner controls: -sandbox spawn=deny. Such a QEMU cannot daemonize (its own
# fork is denied), so it runs in the background without -daemonize.
nodaemon=$VM_DIR/nodaemon.sh
cat >"$nodaemon" <<'EOF'
#!/bin/sh
# Runs QEMU in the background without -daemonize and waits for its pidfile.
pidfile=
for a; do
	shift
	[ "$prev" = -pidfile ] && pidfile=$a
	prev=$a
	[ "$a" = -daemonize ] || set -- "$@" "$a"
done
setsid "$@" </dev/null >/dev/null 2>&1 &
for _ in $(seq 300); do [ -s "$pidfile" ] && exit 0; sleep 0.1; done
exit 1
EOF
chmod +x "$nodaemon"
first=$VM_DIR
VM_WRAP=$nodaemon vm_start spawndeny -machine aux-ram-share=on \
	-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny || exit 1
vm_wait_ready 120 || exit 1
before=$(ls -l "/proc/$VM_PID/fd" | wc -l)
report=$("$QU_BIN" --pid "$VM_PID" --keep-pid --json --quiet 2>"$VM_DIR/err")
rc=$?
tap_diag "spawn=deny: exit $rc: $(cat "$VM_DIR/err")"
[ "$rc" = 3 ] && [ "$(json_get "$report" result)" = refused ] && grep -q "spawn=deny" <<<"$(json_get "$report" refusal)"
tap_ok $? "-sandbox spawn=deny with --keep-pid: refused (exit 3) with that reason"
[ "$(vm_qmp "$VM_QMP" '{"execute":"query-migrate-parameters"}' | jq -r .return.mode)" = normal ] &&
	[ "$(vm_qmp "$VM_QMP" '{"execute":"query-migrate"}' | jq -r '.return.status // "none"')" = none ] &&
	[ "$(ls -l "/proc/$VM_PID/fd" | wc -l)" = "$before" ] && [ "$(vm_runstate)" = running ]
tap_ok $? "nothing was touched: mode normal, no migration, the same descriptors, running"
report=$("$QU_BIN" inspect --pid "$VM_PID" --json --quiet)
grep -q "spawn=deny" <<<"$(json_get "$report" pid_note)"
tap_ok $? "without --keep-pid the plan says why the PID cannot be kept ($(json_get "$report" pid_note | cut -c1-80)...)"

VM_DIR=$first VM_QMP=$first/qmp.sock VM_SERIAL=$first/serial.log
well "$pid"
tap_ok $? "the first VM is still well at the end"
tap_done
