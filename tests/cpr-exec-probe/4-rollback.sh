#!/usr/bin/env bash
# 4-rollback.sh: can a cpr-exec whose new image fails to load be rolled back in the same PID?
# The new image is started with -incoming defer, so that the caller loads the state with
# migrate-incoming exit-on-error=false and the process survives a failed load (in "inmigrate").
# Then the caller asks that process for a second cpr-exec, back to the old command line with
# -incoming file:ORIGINAL (the state the old image saved, untouched), saving the failed
# image's state to another file. RAM stays in the memfd that CPR preserves across both execs.
. "$(dirname "$0")/lib.sh"
probe_start rollback
pid=$VM_PID
probe_new_argv "$VM_PID" "file:$VM_DIR/vm.state"
back=("${NEW_ARGV[@]}")      # the old image again, loading the original state
probe_new_argv "$VM_PID" defer
NEW_ARGV+=(-smp 2)           # a deterministic load failure (the source has one vCPU)
probe_wrap_stderr "$VM_DIR/new.err"
python3 "$probe_dir/cprexec.py" "$VM_QMP" "file:$VM_DIR/vm.state" "$VM_QMP" 30 -- "${NEW_ARGV[@]}" >"$VM_DIR/log" 2>&1
echo "first cpr-exec: cprexec.py exit $? (4: the new image waits in inmigrate, as asked), PID $(kill -0 $pid && echo $pid alive)"
echo "load: $(vm_qmp "$VM_QMP" "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"file:$VM_DIR/vm.state\",\"exit-on-error\":false}}")"
for _ in $(seq 100); do
	st=$(vm_qmp "$VM_QMP" '{"execute":"query-migrate"}' | jq -r .return.status)
	[ "$st" = failed ] || [ "$st" = completed ] && break
	sleep 0.1
done
echo "after the load: $(vm_qmp "$VM_QMP" '{"execute":"query-migrate"}'), run state $(vm_runstate)"
cp "$VM_SERIAL" "$VM_DIR/serial.before"
NEW_ARGV=("${back[@]}")
probe_wrap_stderr "$VM_DIR/back.err"
python3 "$probe_dir/cprexec.py" "$VM_QMP" "file:$VM_DIR/failed.state" "$VM_QMP" 60 -- "${NEW_ARGV[@]}" >"$VM_DIR/log2" 2>&1
rc=$?
echo "second cpr-exec (back): cprexec.py exit $rc"
jq -c 'select(.side=="note" or (.msg|type)=="object" and (.msg.event or .msg.error)) | [.side, .msg]' "$VM_DIR/log2" | cut -c1-300
if kill -0 "$pid" 2>/dev/null; then
	echo "PID $pid alive, run state $(vm_runstate), query-migrate $(vm_qmp "$VM_QMP" '{"execute":"query-migrate"}' | cut -c1-200)"
	vm_memcheck_progress 60 && echo "guest: $(vm_memcheck_status)" || echo "guest does not progress: $(vm_memcheck_status)"
	grep -a 'MEMCHECK CORRUPT' "$VM_SERIAL" | head -3
else
	echo "PID $pid gone"
fi
for e in new.err back.err; do [ -s "$VM_DIR/$e" ] && { echo "$e:"; cat "$VM_DIR/$e"; }; done
