#!/usr/bin/env bash
# The new QEMU SIGKILLed at every fault point, several times each (QU_REPEAT, 2 by default;
# `make check-load` runs it with two CPUs kept busy). Before the commit point the tool must
# notice (it proves the new QEMU alive and answering before `cont`), roll back, and the old
# QEMU runs on, clean. After the commit point (7: the new QEMU runs the guest, the old one not
# yet retired) the guest has run on the new QEMU and is lost with it: the tool must not
# retire the old QEMU (it proves the new one alive before that too), nor resume it (its RAM and
# disks moved on): it leaves it paused, says so, and exits 4. Point 8 is after the old QEMU's
# retirement: nothing is left for the tool to decide there.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/interrupt.sh"

repeat=${QU_REPEAT:-2}
points="2 3 4 5 6"
tap_plan $(( $(wc -w <<<"$points") * repeat * 5 + 5 ))
vm_start new-qemu-killed || exit 1
vm_wait_ready || exit 1
export QEMU_UPGRADE_STATE_DIR=$VM_DIR/state

for point in $points; do
	for round in $(seq "$repeat"); do
		old=$VM_PID
		kill_new_at "$point"
		[ -n "$newq" ] && [ "$late" = 0 ]
		tap_ok $? "point $point, round $round: the new QEMU was killed before the commit" ||
			tap_diag "the tool's log: $(cat "$err")"
		tap_is "$rc" 1 "point $point, round $round: the tool noticed and rolled back (exit 1)"
		sane "point $point, round $round" old "$old"
	done
done

# After the commit: the guest ran on the new QEMU, which is gone.
old=$VM_PID
kill_new_at 7
[ -n "$newq" ] && grep -q "phase committed\|fault point 7: pausing" "$err"
tap_ok $? "point 7: the new QEMU was killed after the commit"
tap_is "$rc" 4 "point 7: exit 4 (not rolled back, not finished)"
grep -q "died after it took over the guest.*the old QEMU is left paused" "$err"
tap_ok $? "point 7: the message says the guest is lost and the old QEMU is left paused"
state=$(vm_runstate)
[ -e "/proc/$old" ] && ! proc_gone "$old" && [ "$state" != running ] && [ -n "$state" ]
tap_ok $? "point 7: the old QEMU $old is neither retired nor resumed (run state '$state')"
for _ in $(seq 100); do [ -z "$(ls -A "$QEMU_UPGRADE_STATE_DIR" 2>/dev/null)" ] && break; sleep 0.1; done
[ -z "$(ls -A "$QEMU_UPGRADE_STATE_DIR" 2>/dev/null)" ] && [ "$(cat "$VM_DIR/qemu.pid")" = "$old" ]
tap_ok $? "point 7: no journal left, the pidfile names the old QEMU" ||
	tap_diag "state: $(ls "$QEMU_UPGRADE_STATE_DIR" 2>&1) pidfile: $(cat "$VM_DIR/qemu.pid")"
tap_done
