#!/usr/bin/env bash
# 3-failures.sh: what a failed cpr-exec does to the VM. One VM per case, one at a time:
#   missing  cpr-exec-command names a binary that does not exist (execvp fails)
#   false    cpr-exec-command is /bin/false (the exec succeeds, the image exits at once)
#   load     the new QEMU cannot load the state (-smp 2 against a -smp 1 source)
#   defer    as load, but the new image is started with -incoming defer and the caller
#            issues migrate-incoming with exit-on-error=false
# Prints, per case: is the PID alive, its run state, query-migrate, the new image's stderr,
# and whether the guest's checker goes on.
. "$(dirname "$0")/lib.sh"
case_run() {
	local name=$1 log
	probe_start "fail-$name"
	log=$VM_DIR/log
	case $name in
	missing) NEW_ARGV=(/nonexistent/qemu-system-x86_64 -incoming "file:$VM_DIR/vm.state") ;;
	false) NEW_ARGV=(/bin/false) ;;
	load) probe_new_argv "$VM_PID" "file:$VM_DIR/vm.state"
		NEW_ARGV+=(-smp 2)
		probe_wrap_stderr "$VM_DIR/new.err" ;;
	defer) probe_new_argv "$VM_PID" defer
		NEW_ARGV+=(-smp 2)
		probe_wrap_stderr "$VM_DIR/new.err" ;;
	esac
	python3 "$probe_dir/cprexec.py" "$VM_QMP" "file:$VM_DIR/vm.state" "$VM_QMP" 20 -- "${NEW_ARGV[@]}" >"$log" 2>&1
	echo "== $name: cprexec.py exit $?"
	jq -c 'select(.side=="note" or (.msg|type)=="object" and (.msg.event or .msg.error or ((.msg.return|type)=="object" and .msg.return.status))) | [.side, .msg]' "$log" 2>/dev/null | cut -c1-300
	if [ "$name" = defer ] && kill -0 "$VM_PID" 2>/dev/null; then
		echo "defer: migrate-incoming exit-on-error=false:"
		vm_qmp "$VM_QMP" "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"file:$VM_DIR/vm.state\",\"exit-on-error\":false}}"
		for _ in $(seq 50); do
			st=$(vm_qmp "$VM_QMP" '{"execute":"query-migrate"}' | jq -r .return.status)
			[ "$st" = failed ] || [ "$st" = completed ] && break
			sleep 0.1
		done
		vm_qmp "$VM_QMP" '{"execute":"query-migrate"}' | cut -c1-300
	fi
	# A QEMU that failed to load exits: give it time to either go or answer.
	for _ in $(seq 100); do
		kill -0 "$VM_PID" 2>/dev/null || break
		VM_QMP_TIMEOUT=1 vm_qmp "$VM_QMP" '{"execute":"query-status"}' >/dev/null 2>&1 && break
		sleep 0.1
	done
	if kill -0 "$VM_PID" 2>/dev/null; then
		echo "query-migrate: $(vm_qmp "$VM_QMP" '{"execute":"query-migrate"}' | cut -c1-300)"
		echo "mode: $(vm_qmp "$VM_QMP" '{"execute":"query-migrate-parameters"}' | jq -c '.return | {mode, "cpr-exec-command"}' | cut -c1-200)"
		echo "PID $VM_PID alive, run state: $(vm_runstate)"
		vm_memcheck_progress 30 && echo "guest runs on: $(vm_memcheck_status)" || echo "guest does not progress: $(vm_memcheck_status)"
	else
		echo "PID $VM_PID is gone: the guest is lost"
	fi
	[ -s "$VM_DIR/new.err" ] && { echo "new image stderr:"; cat "$VM_DIR/new.err"; }
	if [ "$name" = missing ] && kill -0 "$VM_PID" 2>/dev/null; then
		probe_new_argv "$VM_PID" "file:$VM_DIR/vm.state"
		python3 "$probe_dir/cprexec.py" "$VM_QMP" "file:$VM_DIR/vm.state" "$VM_QMP" 60 -- "${NEW_ARGV[@]}" >"$log.2" 2>&1
		echo "missing: a correct cpr-exec afterwards: cprexec.py exit $?, PID $(cat "$VM_DIR/qemu.pid"), run state $(vm_runstate)"
		vm_memcheck_progress 30; echo "  $(vm_memcheck_status)"
	fi
	vm_stop "$VM_PID"
}
for c in ${*:-missing false load defer}; do case_run "$c"; done
