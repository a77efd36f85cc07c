#!/usr/bin/env bash
# 8-listenfd.sh: the QMP listening socket inherited as a descriptor, as libvirt passes its
# monitor (-chardev socket,id=mon,fd=21,server=on,wait=off -mon chardev=mon,mode=control; the
# socket bound and listening before QEMU starts, tests/helpers/listenfd.py). Does the same
# listening socket serve the new image (same socket inode in /proc/PID/net/unix), and what
# happens to the caller's connection?
. "$(dirname "$0")/lib.sh"
sockdir=$(mktemp -d /tmp/cprx-lfd.XXXXXX) && _vm_paths+=("$sockdir")
mon=$sockdir/mon.sock
VM_WRAP="python3 $probe_dir/../helpers/listenfd.py $mon 21 0" probe_start listenfd \
	-chardev socket,id=mon,fd=21,server=on,wait=off -mon chardev=mon,mode=control
lsock() { awk -v p="$mon" '$NF == p && $4 == "00010000" { print $7 }' "/proc/$VM_PID/net/unix"; }
echo "before: fd 21 -> $(readlink /proc/$VM_PID/fd/21), listening inode $(lsock)"
probe_new_argv "$VM_PID" "file:$VM_DIR/vm.state"
probe_wrap_stderr "$VM_DIR/new.err"
python3 "$probe_dir/cprexec.py" "$mon" "file:$VM_DIR/vm.state" "$mon" 60 -- "${NEW_ARGV[@]}" >"$VM_DIR/log" 2>&1
echo "cprexec.py exit $?"
jq -c 'select(.side=="note" or (.msg|type)=="object" and (.msg.event=="STOP" or .msg.event=="RESUME" or .msg.error)) | [.side, .msg]' "$VM_DIR/log" | cut -c1-200
echo "after: fd 21 -> $(readlink /proc/$VM_PID/fd/21), listening inode $(lsock), run state $(vm_runstate "$mon")"
[ -s "$VM_DIR/new.err" ] && cat "$VM_DIR/new.err"
vm_memcheck_progress 30; vm_memcheck_status
