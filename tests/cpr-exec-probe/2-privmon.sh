#!/usr/bin/env bash
# 2-privmon.sh: does an inherited, already-connected private QMP monitor
# (-chardev socket,id=ctl,fd=20 -mon chardev=ctl,mode=control, the form libvirt-like callers
# and this project use) survive cpr-exec, so that the caller sees the old image's STOP and the
# new image's greeting and RESUME on one connection? Also lists /proc/PID/fd before and after.
. "$(dirname "$0")/lib.sh"
dir=$(mktemp -d /tmp/cprx-priv.XXXXXX) && _vm_paths+=("$dir")
probe_qemu_args "$dir"
python3 "$probe_dir/privmon.py" 20 "$dir/qemu.pid" "$dir/serial.log" 120 -- "${QEMU_ARGS[@]}" \
	-chardev socket,id=ctl,fd=20 -mon chardev=ctl,mode=control >"$dir/log" 2>"$dir/err" &
mon=$!
until [ -s "$dir/qemu.pid" ] || ! kill -0 $mon 2>/dev/null; do sleep 0.1; done
VM_PID=$(cat "$dir/qemu.pid") && vm_track_pid "$VM_PID"
wait $mon
echo "privmon.py exit $?"; cat "$dir/err"
VM_SERIAL=$dir/serial.log VM_QMP=$dir/qmp.sock
jq -c 'select(.side!="fds-before" and .side!="fds-after") | [.side, .msg]' "$dir/log" | cut -c1-220
echo "pause (old STOP -> new RESUME, QMP timestamps): $(jq -rs '
	def ts: .timestamp.seconds + .timestamp.microseconds / 1e6;
	([.[] | select(.msg.event?=="STOP") | .msg | ts] | first) as $a |
	([.[] | select(.msg.event?=="RESUME") | .msg | ts] | last) as $b |
	if $a and $b then (($b - $a) * 1000 | floor) else "?" end' "$dir/log") ms"
echo "descriptors before -> after:"
diff <(jq -r 'select(.side=="fds-before") | .msg | to_entries[] | "\(.key) -> \(.value)"' "$dir/log") \
	<(jq -r 'select(.side=="fds-after") | .msg | to_entries[] | "\(.key) -> \(.value)"' "$dir/log")
echo "after:"; jq -r 'select(.side=="fds-after") | .msg | to_entries[] | "\(.key) -> \(.value)"' "$dir/log"
vm_memcheck_progress 60; echo "PID $VM_PID $(vm_memcheck_status) runstate $(vm_runstate)"
