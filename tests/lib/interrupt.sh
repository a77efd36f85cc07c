# interrupt.sh: running the tool in the background and checking the VM afterwards, for the
# tests that interrupt an upgrade from outside (e2e/interrupts.t, e2e/new-qemu-killed.t).
# Needs vm.sh and tap.sh, a running VM ($VM_PID, $VM_DIR) and $QEMU_UPGRADE_STATE_DIR.

# bg_tool FAULT MARK: runs the tool in the background with QEMU_UPGRADE_FAULT=FAULT and
# waits until its log says MARK; sets tool and err (a fresh log file each time, so that a
# previous run's lines cannot be mistaken for this one's).
_bg=0
bg_tool() {
	_bg=$((_bg + 1))
	err=$VM_DIR/err.$_bg
	QEMU_UPGRADE_FAULT=$1 "$QU_BIN" --pid "$VM_PID" >/dev/null 2>"$err" &
	tool=$!
	for _ in $(seq 200); do grep -q "$2" "$err" 2>/dev/null && return 0; sleep 0.05; done
	tap_diag "the tool never said '$2': $(cat "$err")"
}

# sane DESC WANT(old|new) OLD_PID: one QEMU, on the expected side, running and clean.
sane() {
	local desc=$1 want=$2 old=$3 owners i
	for i in $(seq 300); do
		[ -z "$(ls -A "$QEMU_UPGRADE_STATE_DIR" 2>/dev/null)" ] && break
		sleep 0.1
	done
	owners=$(qemu_pids_for "$VM_DIR")
	VM_PID=$owners
	vm_track_pid "$VM_PID" 2>/dev/null
	{ [ "$want" = old ] && [ "$owners" = "$old" ]; } || { [ "$want" = new ] && [ "$owners" != "$old" ] && [ "$(wc -w <<<"$owners")" = 1 ]; }
	tap_ok $? "$desc: exactly one QEMU, the $want one, owns the guest" ||
		tap_diag "owners: $(echo $owners) (old $old); state: $(ls "$QEMU_UPGRADE_STATE_DIR" 2>&1 | tr '\n' ' ')"
	local state pidfile progress=ok
	state=$(vm_runstate)
	pidfile=$(cat "$VM_DIR/qemu.pid" 2>&1)
	vm_memcheck_progress 60 2>/dev/null || progress="no new pass in 60 s"
	[ "$state" = running ] && [ "$pidfile" = "$VM_PID" ] && [ "$progress" = ok ] && [ "$(vm_memcheck_errors)" = 0 ]
	tap_ok $? "$desc: running, QMP at its path, pidfile right, guest clean" ||
		tap_diag "run state '$state'; pidfile '$pidfile' (owner $VM_PID); guest: $progress, last status" \
			"'$(vm_memcheck_status)'; the tool said: $(grep -v '^\[' "${err:-/dev/null}" 2>/dev/null | tail -n 5 | tr '\n' ' ')"
	[ -z "$(ls -A "$QEMU_UPGRADE_STATE_DIR" 2>/dev/null)" ] && [ "$(ls "$VM_DIR" | grep -c qemu-upgrade)" = 0 ]
	tap_ok $? "$desc: no journal, lock, socket or link left"
}

# kill_new_at POINT: the tool stands at POINT for 3 s; the new QEMU it started (its PID from
# the tool's own log line) is SIGKILLed there. Sets rc, newq and late (commit lines in the
# tool's log before the kill: at points 2-6 a kill after the commit is not the case under
# test; at point 7 the tool stands between the journal's commit and its log line).
kill_new_at() {
	bg_tool "$1:pause=3000" "fault point $1: pausing"
	newq=$(started_qemu "$err")
	late=$(grep -c 'commit point' "$err")
	[ -n "$newq" ] && kill -KILL "$newq"
	wait "$tool"
	rc=$?
	tap_diag "point $1: new QEMU ${newq:-?} killed ($late commit lines before): exit $rc: $(grep -v '^\[' "$err" | tr '\n' ' ' | cut -c1-400)"
}
