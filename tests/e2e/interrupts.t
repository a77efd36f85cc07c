#!/usr/bin/env bash
# What the world does to an upgrade: signals to the tool, a second upgrade of the same VM,
# the tool and its guardian both SIGKILLed (then --recover), the new QEMU SIGKILLed at each
# phase, a full disk under the journal, and too few descriptors. After each: one QEMU owns
# the guest, running, clean, and nothing is left behind.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/interrupt.sh"

tap_plan 54
vm_start interrupts || exit 1
vm_wait_ready || exit 1
export QEMU_UPGRADE_STATE_DIR=$VM_DIR/state

for sig in INT TERM HUP; do
	old=$VM_PID
	bg_tool 4:wait "waiting for a signal"
	kill -"$sig" "$tool"
	wait "$tool"
	rc=$?
	tap_diag "SIG$sig: $(grep -v '^\[' "$err" | tr '\n' ' ')"
	tap_is "$rc" 1 "SIG$sig while migrating: exit 1"
	grep -q "cancelled by a signal" "$err"
	tap_ok $? "SIG$sig: the error says it was cancelled"
	sane "SIG$sig" old "$old"
done

# A second upgrade of the same VM while one runs.
old=$VM_PID
bg_tool 3:wait "waiting for a signal"
err=$("$QU_BIN" --pid "$old" --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "$err"
[ "$rc" = 2 ] && grep -q "another upgrade of PID $old is running" <<<"$err"
tap_ok $? "a second upgrade of the same VM is refused while one runs"
kill -INT "$tool"
wait "$tool"
sane "after the concurrent attempt" old "$old"

# Tool and guardian both die: --recover settles, from the journal alone.
for case in "5 old" "7 new"; do
	set -- $case
	old=$VM_PID
	bg_tool "$1:wait" "waiting for a signal"
	# The guardian: the tool's child that runs the tool's own binary (the other is the new QEMU).
	guardian=
	for st in $(grep -l "^PPid:[[:space:]]*$tool\$" /proc/[0-9]*/status 2>/dev/null); do
		p=$(cut -d/ -f3 <<<"$st")
		[ "$(readlink "/proc/$p/exe")" = "$(readlink -f "$QU_BIN")" ] && guardian=$p
	done
	tap_diag "tool $tool guardian ${guardian:-none}"
	[ -n "$guardian" ] && kill -KILL "$guardian"
	kill -KILL "$tool"
	wait "$tool" 2>/dev/null
	for _ in $(seq 100); do [ -n "$guardian" ] && ! proc_gone "$guardian" || break; sleep 0.05; done
	[ -e "$QEMU_UPGRADE_STATE_DIR/$old.journal" ]
	tap_ok $? "point $1: tool and guardian killed, the journal remains"
	out=$("$QU_BIN" --recover 2>&1)
	rc=$?
	tap_diag "recover: $out"
	[ "$rc" = 0 ] && grep -q "PID $old: $([ "$2" = old ] && echo rolled back || echo finished)" <<<"$out"
	tap_ok $? "point $1: --recover says what it did"
	sane "recover at point $1" "$2" "$old"
done
out=$("$QU_BIN" --recover 2>&1)
tap_is "$?:$out" "0:nothing to recover" "--recover with nothing to do exits 0"

# The new QEMU dies while the tool stands still at a phase; the tool notices and rolls back.
# Its PID comes from the tool's own log line, and the kill must land while the tool still
# stands there (a kill after the commit would stop the VM's only QEMU: the test's doing).
for point in 2 3 5 6; do
	old=$VM_PID
	kill_new_at "$point"
	[ -n "$newq" ] && [ "$late" = 0 ] && [ "$rc" = 1 ]
	tap_ok $? "new QEMU SIGKILLed at point $point: exit 1"
	sane "new QEMU killed at point $point" old "$old"
done

# The disk under the journal is full: the upgrade stops before it touches anything.
full=$VM_DIR/full
mkdir -p "$full" && mount -t tmpfs -o size=64k tmpfs "$full"
dd if=/dev/zero of="$full/filler" bs=4k count=64 2>/dev/null
old=$VM_PID
err=$(QEMU_UPGRADE_STATE_DIR=$full "$QU_BIN" --pid "$old" --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "journal on a full disk: exit $rc: $err"
[ "$rc" = 1 ] && grep -q "cannot write the journal.*No space left on device" <<<"$err"
tap_ok $? "a full disk under the journal: exit 1, and the message names it"
rm -f "$full"/*.lock
umount "$full"
sane "full disk" old "$old"

# Too few descriptors: whatever step runs out first fails, and the VM is as it was.
old=$VM_PID
err=$(prlimit --nofile=9:9 "$QU_BIN" --pid "$old" --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "nofile=9: exit $rc: $err"
[ "$rc" = 1 ] || [ "$rc" = 2 ]
tap_ok $? "too few descriptors: a clear failure (exit $rc)"
sane "too few descriptors" old "$old"
tap_done
