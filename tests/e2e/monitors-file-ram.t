#!/usr/bin/env bash
# A VM whose RAM is a shared file under /dev/shm and whose monitors are -chardev sockets
# (QMP through -mon mode=control, and an HMP monitor): upgraded twice, both monitors keep
# answering at their paths, and the guest stays clean.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 14
sockdir=$(mktemp -d)
_vm_paths+=("$sockdir")
hmp() { printf '%s\n' "$1" | timeout 10 socat -t 1 - "UNIX-CONNECT:$sockdir/hmp.sock" 2>/dev/null | tr -d '\r'; }

VM_RAM=file vm_start monitors \
	-chardev "socket,id=qmp1,path=$sockdir/qmp.sock,server=on,wait=off" -mon chardev=qmp1,mode=control \
	-chardev "socket,id=hmp0,path=$sockdir/hmp.sock,server=on,wait=off" -mon chardev=hmp0,mode=readline || exit 1
vm_wait_ready || exit 1
hmp 'info status' | grep -q 'VM status: running'
tap_ok $? "HMP answers before the upgrade"
plan=$("$QU_BIN" --pid "$VM_PID" --dry-run --json --quiet)
tap_is "$(json_get "$plan" result)" planned "--dry-run plans"
jq -e '[.descriptors[] | select(.kind == "listener")] | length == 3' <<<"$plan" >/dev/null
tap_ok $? "the plan carries all three listening monitor sockets"
jq -e '.descriptors[] | select(.kind == "ram" and (.what | test("memory-backend-file")))' <<<"$plan" >/dev/null
tap_ok $? "the plan carries the file-backed guest RAM"

"$QU_BIN" --pid "$VM_PID" --write-stream "$sockdir/stream.bin" --quiet >/dev/null
dump=$("$QU_BIN" dump-stream "$sockdir/stream.bin")
tap_ok $? "dump-stream decodes the planned handover stream"
grep -q '^ *[0-9]* HELLO version=3' <<<"$dump" && grep -q "FD target=5 kind=4" <<<"$dump" && grep -q "^ *[0-9]* CONTEXT uid=" <<<"$dump" &&
	grep -q 'ARG -incoming' <<<"$dump" && tail -n 1 <<<"$dump" | grep -q EXEC
tap_ok $? "the stream holds HELLO, the command line, the RAM descriptor, the context and EXEC"

for round in 1 2; do
	report=$("$QU_BIN" --pid "$VM_PID" --json --quiet)
	new=$(json_get "$report" new_pid)
	[[ $new =~ ^[0-9]+$ ]] && vm_track_pid "$new" && VM_PID=$new
	tap_diag "round $round: $report"
	[ "$(json_get "$report" result)" = upgraded ] && [ "$(json_get "$report" ram_copied_bytes)" -lt 1048576 ]
	tap_ok $? "round $round: upgraded zero-copy"
	tap_is "$(vm_runstate "$sockdir/qmp.sock")" running "round $round: the -chardev QMP socket answers"
	hmp 'info status' | grep -q 'VM status: running'
	tap_ok $? "round $round: the HMP socket answers"
done
vm_memcheck_progress 60
tap_ok $? "the guest makes progress"
tap_is "$(vm_memcheck_errors)" 0 "the guest reports no corruption"
tap_done
