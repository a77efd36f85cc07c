#!/usr/bin/env bash
# 1-basic.sh [ROUNDS]: cpr-exec 11.1 -> 11.1 of a running memcheck VM (256 MiB memfd RAM,
# aux-ram-share=on), ROUNDS times in a row (default 3), through the public QMP socket path.
# Prints per round: the PID before/after, pause (STOP -> first "running" answer of the new
# image), the listening socket's inode before/after, and the guest's checker line afterwards.
. "$(dirname "$0")/lib.sh"
probe_start basic
pid0=$VM_PID
# The inode of the socket listening at the QMP path (from the process's own net/unix table;
# the file's inode on tmpfs says nothing about which socket is bound there).
lsock() { awk -v p="$VM_QMP" '$NF == p && $4 == "00010000" { print $7 }' "/proc/$VM_PID/net/unix"; }
for round in $(seq "${1:-3}"); do
	log=$VM_DIR/round$round.log
	ino0=$(lsock)
	probe_new_argv "$VM_PID" "file:$VM_DIR/vm.state"
	probe_wrap_stderr "$VM_DIR/new.err"
	python3 "$probe_dir/cprexec.py" "$VM_QMP" "file:$VM_DIR/vm.state" "$VM_QMP" 60 -- "${NEW_ARGV[@]}" >"$log" 2>&1
	rc=$?
	# Pause as the caller sees it: the old STOP event's timestamp to the host time at which
	# the new image first answered "running" (an upper bound: polled every 10 ms).
	pause=$(jq -rs '([.[] | select(.side=="old" and .msg.event=="STOP") | .msg.timestamp |
		.seconds + .microseconds/1e6] | first) as $a |
		([.[] | select(.side=="note" and .msg=="new image running") | .wall] | first) as $b |
		if $a and $b then (($b - $a) * 1000 | floor) else "?" end' "$log")
	exec_ms=$(jq -rs '([.[] | select(.side=="old" and .msg.event=="STOP") | .msg.timestamp |
		.seconds + .microseconds/1e6] | first) as $a |
		([.[] | select(.side=="note" and .msg=="old monitor closed") | .wall] | first) as $b |
		if $a and $b then (($b - $a) * 1000 | floor) else "?" end' "$log")
	vm_memcheck_progress 60
	echo "round $round: rc=$rc pid $pid0 -> $(cat "$VM_DIR/qemu.pid") (alive: $(kill -0 "$pid0" && echo yes))" \
		"stop->old monitor EOF ${exec_ms} ms, stop->new running ${pause} ms," \
		"listening socket inode $ino0 -> $(lsock), state file $(stat -c %s "$VM_DIR/vm.state") B," \
		"$(vm_memcheck_status), runstate $(vm_runstate)"
	[ -s "$VM_DIR/new.err" ] && { echo "new image stderr:"; cat "$VM_DIR/new.err"; }
done
echo "log of the last round: events and answers"
jq -c 'select(.side=="note" or (.msg|type)=="object" and (.msg.event or ((.msg.return|type)=="object" and .msg.return.status))) | [.side, .msg]' "$log" | cut -c1-200
