#!/usr/bin/env bash
# The PID is pinned before anything is read. The tool is started on VM A's QEMU (PID P) and
# stands still right after pinning it (fault point 12, QEMU_UPGRADE_FAULT=12:pause=MS); A is
# killed, and a second real VM B is started so that it gets the same PID P (inside a PID
# namespace of the test's own, where /proc/sys/kernel/ns_last_pid picks the next PID). When
# the tool goes on, everything it reads by PID P is B's: it must notice that the process it
# pinned exited, and stop with an error (exit 2, "QEMU PID P exited") before touching
# anything. B is untouched: same process at PID P, running, alone, its pidfile and directory
# as they were, no journal. As a control, the same tool without the fault upgrades B
# normally, and B's guest is clean.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

# Outside: build the guest (shared with other tests), then run this script again as the init
# of a new PID namespace with its own /proc. When it exits, whatever is left in the namespace
# is killed by the kernel (and it by unshare, should unshare be killed).
if [ -z "${QU_PIDNS_INNER:-}" ]; then
	vm_guest_build || { echo "Bail out! cannot build the guest"; exit 1; }
	unshare --pid --fork --mount-proc true || { echo "Bail out! cannot make a PID namespace (unshare --pid)"; exit 1; }
	QU_PIDNS_INNER=1 exec unshare --pid --fork --mount-proc --kill-child "$BASH" "$0" "$@"
	echo "Bail out! unshare --pid --fork --mount-proc failed"
	exit 1
fi

tap_plan 8
[ $$ = 1 ] || { echo "Bail out! not the init of a new PID namespace (PID $$)"; exit 1; }
NB="setpriv --reuid=65534 --regid=65534 --clear-groups"
PAUSE_MS=20000 # the tool stands still this long after pinning; B is up well within it

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trust-pid-reuse.XXXXXX") || exit 1
_vm_paths+=("$tmp")
export QEMU_UPGRADE_STATE_DIR=$tmp/state

# --- VM A, and the tool paused on its PID.
VM_OWNER=nobody VM_WRAP=$NB vm_start pidreuse-a || exit 1
vm_wait_ready || exit 1
P=$VM_PID
a_start=$(_vm_starttime "$P")
QEMU_UPGRADE_FAULT=12:pause=$PAUSE_MS "$QU_BIN" --pid "$P" --json -v -v >"$tmp/tool.out" 2>"$tmp/tool.err" &
tool=$!
vm_track_pid "$tool"
end=$((SECONDS + 60))
until grep -q 'fault point 12: pausing' "$tmp/tool.err"; do
	if proc_gone "$tool" || [ $SECONDS -ge $end ]; then
		tap_diag "the tool did not reach fault point 12: $(tr '\n' '|' <"$tmp/tool.err")"
		break
	fi
	sleep 0.1
done
grep -q 'fault point 12: pausing' "$tmp/tool.err" && ! proc_gone "$tool" &&
	grep -q '^Uid:[[:space:]]*65534' "/proc/$P/status"
tap_ok $? "VM A runs as nobody at PID $P; the tool pinned it and stands still at fault point 12"
tap_diag "the tool so far: $(tr '\n' '|' <"$tmp/tool.err")"
paused_lines=$(wc -l <"$tmp/tool.err")

# --- A dies; B is started so that it gets PID P.
vm_stop "$P"
end=$((SECONDS + 30))
while [ -e "/proc/$P" ] && [ $SECONDS -lt $end ]; do sleep 0.1; done
[ -e "/proc/$P" ] && tap_diag "PID $P still exists after A was killed: $(grep State "/proc/$P/status")"

b_dir=$(mktemp -d "${TMPDIR:-/tmp}/vm-pidreuse-b.XXXXXX") || exit 1
_vm_paths+=("$b_dir")
chown nobody "$b_dir" && chmod 755 "$b_dir"
# As vm_start starts a VM, but not daemonized: the PID that & forks is QEMU's.
b_args=(-accel tcg -machine q35,memory-backend=mem0 -object memory-backend-memfd,id=mem0,size=256M,share=on
	-m 256M -smp 1 -nodefaults -display none -kernel "$VM_KERNEL" -initrd "$VM_INITRD"
	-append "$VM_CMDLINE memcheck_mib=${VM_MEMCHECK_MIB:-32}"
	-chardev "file,id=serial0,path=$b_dir/serial.log" -serial chardev:serial0
	-qmp "unix:$b_dir/qmp.sock,server=on,wait=off" -pidfile "$b_dir/qemu.pid")
b_pid=
for try in 1 2 3 4 5; do
	end=$((SECONDS + 30))
	while [ -e "/proc/$P" ] && [ $SECONDS -lt $end ]; do sleep 0.1; done
	# Nothing may fork between these two lines (both are builtins' work in this shell).
	echo $((P - 1)) >/proc/sys/kernel/ns_last_pid
	$NB "$QEMU" "${b_args[@]}" </dev/null >"$b_dir/qemu.out" 2>"$b_dir/qemu.err" &
	b_pid=$!
	disown "$b_pid" # reaped all the same (we are the namespace's init), but not reported
	vm_track_pid "$b_pid"
	[ "$b_pid" = "$P" ] && break
	tap_diag "try $try: VM B got PID $b_pid, not $P (another fork came first: $(tr '\0' ' ' <"/proc/$P/cmdline" 2>/dev/null)); again"
	vm_stop "$b_pid"
	b_pid=
done
[ -n "$b_pid" ] || { echo "Bail out! VM B never got PID $P (ns_last_pid raced 5 times)"; exit 1; }
b_start=$(_vm_starttime "$P")
end=$((SECONDS + 60))
until [ "$(vm_runstate "$b_dir/qmp.sock" 2>/dev/null)" = running ]; do
	if proc_gone "$P" || [ $SECONDS -ge $end ]; then
		tap_diag "VM B does not answer on QMP: $(cat "$b_dir/qemu.err")"
		break
	fi
	sleep 0.2
done
st=$(vm_runstate "$b_dir/qmp.sock")
b_before=$(cd "$b_dir" && find . -printf '%p %i %y %u:%g %m %s %T@\n' | LC_ALL=C sort |
	sed -E 's#^(\./serial\.log [^ ]+ [^ ]+ [^ ]+ [^ ]+) [^ ]+ [^ ]+$#\1#')
tap_diag "VM A started at $a_start (clock ticks), VM B at $b_start; VM B: PID $b_pid, exe $(readlink "/proc/$P/exe"), run state '$st'; the tool: $(wc -l <"$tmp/tool.err") lines of output"
# The tool must still be standing still: B is fully up before it reads anything.
[ "$st" = running ] && [ "$(wc -l <"$tmp/tool.err")" = "$paused_lines" ] && ! proc_gone "$tool" &&
	[ -n "$b_start" ] && [ "$b_start" != "$a_start" ] && [ "$(cat "$b_dir/qemu.pid" 2>/dev/null)" = "$P" ]
tap_ok $? "A is gone; VM B (a real QEMU, QMP running) has PID $P while the tool still stands still"

# --- The tool goes on, and reads B by PID P.
end=$((SECONDS + PAUSE_MS / 1000 + 120))
while ! proc_gone "$tool" && [ $SECONDS -lt $end ]; do sleep 0.2; done
if proc_gone "$tool"; then
	wait "$tool"
	rc=$?
else
	tap_diag "the tool did not exit within $((PAUSE_MS / 1000 + 120)) s"
	rc=timeout
fi
tap_diag "the tool: exit $rc; report: $(cat "$tmp/tool.out")"
tap_diag "the tool's output after the pause: $(tail -n +$((paused_lines + 1)) "$tmp/tool.err" | cut -c1-240 | tr '\n' '|')"
tap_is "$rc" 2 "the tool stops with exit 2 (an error before anything was touched)"
want="QEMU PID $P exited (its PID may now name another process)"
grep -qF "$want" "$tmp/tool.err"
tap_ok $? "its message: $want" || tap_diag "stderr: $(tr '\n' '|' <"$tmp/tool.err" | cut -c1-1000)"

owners=$(qemu_pids_for "$b_dir" | tr '\n' ' ')
st=$(vm_runstate "$b_dir/qmp.sock")
b_after=$(cd "$b_dir" && find . -printf '%p %i %y %u:%g %m %s %T@\n' | LC_ALL=C sort |
	sed -E 's#^(\./serial\.log [^ ]+ [^ ]+ [^ ]+ [^ ]+) [^ ]+ [^ ]+$#\1#')
tap_diag "VM B: QEMUs for its directory '$owners', run state '$st', pidfile '$(cat "$b_dir/qemu.pid")', start time $(_vm_starttime "$P") (was $b_start)"
[ "$b_after" = "$b_before" ] || tap_diag "B's directory changed: $(diff <(echo "$b_before") <(echo "$b_after") | tr '\n' '|')"
[ "$owners" = "$P " ] && [ "$st" = running ] && [ "$(_vm_starttime "$P")" = "$b_start" ] &&
	[ "$(cat "$b_dir/qemu.pid")" = "$P" ] && [ "$b_after" = "$b_before" ]
tap_ok $? "VM B untouched: the same process at PID $P, running, alone, its pidfile and directory as they were"
left=$(ls -A "$QEMU_UPGRADE_STATE_DIR" 2>/dev/null)
tap_is "$left" "" "no journal left in the state directory"

# --- Control: the same tool, no fault, on B.
export VM_PID=$P VM_DIR=$b_dir VM_QMP=$b_dir/qmp.sock VM_SERIAL=$b_dir/serial.log
vm_wait_ready || tap_diag "VM B's guest is not ready"
vm_upgrade
rc=$?
tap_diag "control: exit $rc: $(json_get "$REPORT" result) $(json_get "$REPORT" error) $(cat "$VM_DIR/err")"
[ $rc = 0 ] && [ "$(json_get "$REPORT" result)" = upgraded ] && [ "$VM_PID" != "$P" ] &&
	[ "$(qemu_pids_for "$b_dir" | tr '\n' ' ')" = "$VM_PID " ] && [ -z "$(ls -A "$QEMU_UPGRADE_STATE_DIR" 2>/dev/null)" ]
tap_ok $? "control: without the fault the tool upgrades B (PID $P -> $VM_PID), no journal left"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ] && [ "$(vm_runstate)" = running ]
tap_ok $? "B's guest makes progress with no memory errors, running ($(vm_memcheck_status))"
tap_done
