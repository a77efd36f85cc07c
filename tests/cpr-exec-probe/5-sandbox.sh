#!/usr/bin/env bash
# 5-sandbox.sh: cpr-exec of a VM started with -sandbox on,spawn=deny (as libvirt starts QEMU).
# Prints what refuses, with QEMU's words, and whether the VM keeps running.
. "$(dirname "$0")/lib.sh"
# -daemonize with spawn=deny exits 1 without a word on 11.1 (its fork is denied): QEMU runs
# in the background instead, as libvirt runs it, stderr to a file.
dir=$(mktemp -d /tmp/cprx-sandbox.XXXXXX) && _vm_paths+=("$dir")
probe_qemu_args "$dir"
QEMU_ARGS=("${QEMU_ARGS[@]/-daemonize/-S}")   # -S: a harmless stand-in, removed below
unset 'QEMU_ARGS[${#QEMU_ARGS[@]}-3]'
setsid "${QEMU_ARGS[@]}" -sandbox on,spawn=deny </dev/null >/dev/null 2>"$dir/qemu.err" &
VM_PID=$! VM_DIR=$dir VM_QMP=$dir/qmp.sock VM_SERIAL=$dir/serial.log
vm_track_pid "$VM_PID"
vm_wait_ready 120 || { cat "$dir/qemu.err"; exit 1; }
echo "daemonize + spawn=deny: $(d=$(mktemp -d); "$QEMU" -sandbox on,spawn=deny -machine none -display none \
	-nodefaults -daemonize -pidfile "$d/p" 2>&1; echo "exit $?"; [ -s "$d/p" ] && kill "$(cat "$d/p")"; rm -rf "$d")"
probe_new_argv "$VM_PID" "file:$VM_DIR/vm.state"
python3 "$probe_dir/cprexec.py" "$VM_QMP" "file:$VM_DIR/vm.state" "$VM_QMP" 20 -- "${NEW_ARGV[@]}" >"$VM_DIR/log" 2>&1
echo "cprexec.py exit $?"
jq -c 'select(.side=="note" or (.msg|type)=="object" and (.msg.event or .msg.error or .msg.sent.execute)) | [.side, .msg]' "$VM_DIR/log" | cut -c1-300
if kill -0 "$VM_PID" 2>/dev/null; then
	echo "PID $VM_PID alive, run state $(vm_runstate)"
	echo "query-migrate: $(vm_qmp "$VM_QMP" '{"execute":"query-migrate"}')"
	vm_memcheck_progress 30 && echo "guest runs on: $(vm_memcheck_status)"
else
	echo "PID $VM_PID gone"
fi
echo "QEMU's stderr:"; cat "$VM_DIR/qemu.err"
