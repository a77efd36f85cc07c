#!/usr/bin/env bash
# Values read from the VM's QMP are hostile input. The VM's owner (nobody) controls the
# directory of the QMP socket: they move QEMU's socket aside (QEMU keeps listening on the
# moved file) and put their own QMP server (tests/helpers/fakeqmp.py) at the path. The tool
# connects as the VM's user and takes what answers there: a machine type holding ',' and '='
# (an attempt to add options to the new QEMU's command line), one holding a newline, and a
# memory backend id naming /etc/shadow. Each time, the upgrade and a dry run are refused
# (exit 3) before anything is touched, with a message that names the problem on one line
# (control characters as '?'); the real VM keeps running on its QEMU, nothing is written
# into its directory and no journal is left. Once the real socket is back the VM upgrades
# normally and the guest is clean.
#
# The fake binds elsewhere and renames its socket onto the path (as the owner can): the
# kernel's socket table then still names the path for QEMU's socket alone. A fake bound at
# the path itself is tried too (the table then lists two listeners at that path: the tool
# takes the one QEMU holds).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 25
NB="setpriv --reuid=65534 --regid=65534 --clear-groups"
PY=/usr/bin/python3 # root's python3 may be a shim under /root, which nobody cannot read
FAKE=$QU_ROOT/tests/helpers/fakeqmp.py
[ -x "$PY" ] || { echo "Bail out! $PY is missing"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trust-qmp.XXXXXX") || exit 1
_vm_paths+=("$tmp")
export QEMU_UPGRADE_STATE_DIR=$tmp/state

VM_OWNER=nobody VM_WRAP=$NB vm_start trustqmp || exit 1
vm_wait_ready || exit 1
real=$VM_DIR/qmp.real
pid0=$VM_PID

# The owner moves QEMU's socket aside: QEMU keeps listening on the moved file.
$NB mv "$VM_QMP" "$real"
st=$(vm_runstate "$real")
tap_diag "VM: PID $VM_PID as $(stat -c %U "/proc/$VM_PID"), run state through the moved socket: '$st'"
[ "$st" = running ] && [ ! -e "$VM_QMP" ] && grep -q '^Uid:[[:space:]]*65534' "/proc/$VM_PID/status"
tap_ok $? "the VM runs as nobody; its owner moved the QMP socket aside and QEMU answers there"

FAKE_PID=
# start_fake NAME side|direct MACHINE MEMDEV_ID: the owner's QMP server at $VM_QMP (side: bound
# at another name and renamed onto it; direct: bound at the path). Waits until it listens.
start_fake() {
	local name=$1 how=$2 end args
	FAKE_LOG=$VM_DIR/fake-$name.log
	args=(--log "$FAKE_LOG" --machine "$3" --memdev-id "$4" --mem-size $((256 << 20)))
	if [ "$how" = side ]; then
		args+=(--socket "$VM_DIR/fake-$name.sock" --move-to "$VM_QMP")
	else
		args+=(--socket "$VM_QMP")
	fi
	$NB "$PY" "$FAKE" "${args[@]}" 2>"$VM_DIR/fake-$name.err" &
	FAKE_PID=$!
	vm_track_pid "$FAKE_PID"
	end=$((SECONDS + 60))
	until grep -q '^listening' "$FAKE_LOG" 2>/dev/null; do
		if proc_gone "$FAKE_PID" || [ $SECONDS -ge $end ]; then
			tap_diag "fake QMP server $name did not come up: $(cat "$VM_DIR/fake-$name.err" "$FAKE_LOG" 2>&1)"
			return 1
		fi
		sleep 0.1
	done
}

# stop_fake: SIGTERM, wait until it is gone (it removes its socket file while that is its own).
stop_fake() {
	[ -n "$FAKE_PID" ] || return 0
	vm_stop "$FAKE_PID"
	proc_gone "$FAKE_PID" || { tap_diag "fake QMP server $FAKE_PID does not exit"; return 1; }
	FAKE_PID=
}

# listing: the VM's directory (the directory itself included): names, inodes, types, owners,
# modes, sizes and times; sizes and times not for the files that grow by themselves (the
# guest's console, the fake's logs).
listing() {
	(cd "$VM_DIR" && find . -printf '%p %i %y %u:%g %m %s %T@\n' | LC_ALL=C sort |
		sed -E 's#^(\./(serial\.log|fake-[^ ]*\.(log|err)) [^ ]+ [^ ]+ [^ ]+ [^ ]+) [^ ]+ [^ ]+$#\1#')
}

# untouched: the real VM is as it was; prints what it saw otherwise.
untouched() {
	local owners st pf
	owners=$(qemu_pids_for "$VM_DIR" | tr '\n' ' ')
	st=$(vm_runstate "$real")
	pf=$(cat "$VM_DIR/qemu.pid" 2>&1)
	[ "$owners" = "$pid0 " ] && [ "$st" = running ] && [ "$pf" = "$pid0" ] && [ "$VM_PID" = "$pid0" ] && return 0
	tap_diag "QEMUs for the VM's directory: '$owners' (want '$pid0 '); run state through the moved socket: '$st'; pidfile: '$pf'"
	return 1
}

# nothing_left BEFORE: the VM's directory is as listed before and the state directory is empty.
nothing_left() {
	local after left
	after=$(listing)
	left=$(ls -A "$QEMU_UPGRADE_STATE_DIR" 2>/dev/null)
	[ "$after" = "$1" ] && [ -z "$left" ] && return 0
	tap_diag "VM directory changed: $(diff <(echo "$1") <(echo "$after") | tr '\n' '|')"
	tap_diag "state directory holds: '$left'"
	return 1
}

# commands [LOG]: the commands in the fake's log, in order.
commands() { sed -n 's/^<- .*"execute": "\([^"]*\)".*/\1/p' "$@" | tr '\n' ' '; }

# refused_ok MODE RC OUT ERR WANT FAKE_LINES: exit 3, the message (and the report's refusal)
# says WANT, and the fake was asked (FAKE_LINES: its log lines of this run).
refused_ok() {
	local mode=$1 rc=$2 out=$3 err=$4 want=$5 lines=$6
	[ "$rc" = 3 ] || { tap_diag "exit $rc, want 3"; return 1; }
	grep -qF -- "$want" <<<"$err" || { tap_diag "stderr does not say: $want"; return 1; }
	if [ "$mode" = upgrade ] && { [ "$(json_get "$out" result)" != refused ] ||
		! grep -qF -- "$want" <<<"$(json_get "$out" refusal)"; }; then
		tap_diag "report: result '$(json_get "$out" result)', refusal '$(json_get "$out" refusal)'"
		return 1
	fi
	grep -q '"execute": "query-memdev"' <<<"$lines" ||
		{ tap_diag "the tool did not ask the fake (the attack was not tested)"; return 1; }
}

# attack NAME MACHINE MEMDEV_ID SHOWN: the upgrade (--json, progress on stderr) and a dry run
# (the text report) against the fake; SHOWN is the hostile value as the message must show it.
# A value holding a newline: nothing the tool prints may hold it raw (a line starting with
# what follows it would be a line forged in root's output).
attack() {
	local name=$1 machine=$2 id=$3 shown=$4 before out err rc mode n0 raw injected=
	start_fake "$name" side "$machine" "$id"
	# What follows a newline in the value must not start a line of its own in the output.
	case $machine$id in *$'\n'*)
		injected=${machine#*$'\n'}
		[ "$injected" = "$machine" ] && injected=${id#*$'\n'}
		injected=${injected%%[[:space:]]*} ;;
	esac
	for mode in upgrade dry-run; do
		before=$(listing)
		n0=$(wc -l <"$FAKE_LOG")
		if [ "$mode" = upgrade ]; then
			out=$("$QU_BIN" --pid "$VM_PID" --json 2>"$tmp/err")
		else
			out=$("$QU_BIN" --pid "$VM_PID" --dry-run 2>"$tmp/err")
		fi
		rc=$?
		err=$(cat "$tmp/err")
		tap_diag "$name, $mode: exit $rc; stderr: $(tr '\n' '|' <<<"$err")"
		tap_diag "$name, $mode: stdout: $(tr '\n' '|' <<<"$out")"
		tap_diag "$name, $mode: the fake received: $(tail -n +$((n0 + 1)) "$FAKE_LOG" | commands)"
		refused_ok "$mode" "$rc" "$out" "$err" "as '$shown', which is not a name QEMU gives" \
			"$(tail -n +$((n0 + 1)) "$FAKE_LOG")"
		tap_ok $? "$name, $mode: refused (exit 3), the message names the value, on one line"
		if [ -n "$injected" ]; then
			raw=$(grep -n -- "^$injected" <<<"$out"$'\n'"$err")
			[ -z "$raw" ] || tap_diag "$name, $mode: lines of the output that start with '$injected': $(tr '\n' '|' <<<"$raw")"
			[ -z "$raw" ]
			tap_ok $? "$name, $mode: no line of the output starts with '$injected' (the value's newline is not printed raw)"
		fi
		untouched
		tap_ok $? "$name, $mode: the VM still runs on PID $pid0, alone, pidfile unchanged"
		nothing_left "$before"
		tap_ok $? "$name, $mode: nothing written into the VM's directory, no journal"
	done
	stop_fake
}

attack "comma" "pc-q35-7.2,accel=xen,x-remote=on" mem0 "pc-q35-7.2,accel=xen,x-remote=on"
attack "newline" $'pc-q35-7.2\n-machine\tx-remote=on' mem0 "pc-q35-7.2?-machine?x-remote=on"
attack "memdev-id" "pc-q35-7.2" "mem0,mem-path=/etc/shadow" "mem0,mem-path=/etc/shadow"

# The fake bound at the path itself (the socket table lists both listeners at that path).
[ -S "$VM_QMP" ] && $NB rm -f "$VM_QMP"
start_fake direct direct "pc-q35-7.2,accel=xen,x-remote=on" mem0
before=$(listing)
out=$("$QU_BIN" --pid "$VM_PID" --json --quiet 2>"$tmp/err")
rc=$?
err=$(cat "$tmp/err")
tap_diag "bound at the path: exit $rc; stderr: $(tr '\n' '|' <<<"$err"); the fake received: $(commands "$FAKE_LOG")"
tap_diag "bound at the path: the socket table: $(grep -F " $VM_QMP" /proc/net/unix | awk '{print $7, $8}' | tr '\n' '|')"
[ "$rc" = 3 ] && grep -qF "as 'pc-q35-7.2,accel=xen,x-remote=on', which is not a name QEMU gives" <<<"$err"
tap_ok $? "bound at the path: refused (exit 3) naming the value (QEMU's listener told from the fake's)"
untouched && nothing_left "$before"
tap_ok $? "bound at the path: the VM untouched, nothing written, no journal"
stop_fake

# The real socket back: the VM upgrades as usual.
$NB rm -f "$VM_QMP"
$NB mv "$real" "$VM_QMP"
vm_upgrade
rc=$?
tap_diag "upgrade through the real socket: exit $rc: $(json_get "$REPORT" result) $(json_get "$REPORT" error) $(cat "$VM_DIR/err")"
[ $rc = 0 ] && [ "$(json_get "$REPORT" result)" = upgraded ] && [ "$VM_PID" != "$pid0" ] &&
	[ "$(qemu_pids_for "$VM_DIR" | tr '\n' ' ')" = "$VM_PID " ] && [ -z "$(ls -A "$QEMU_UPGRADE_STATE_DIR" 2>/dev/null)" ]
tap_ok $? "the real socket back: upgraded (PID $pid0 -> $VM_PID), one QEMU, no journal"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ] && [ "$(vm_runstate)" = running ]
tap_ok $? "the guest makes progress, no memory errors, running ($(vm_memcheck_status))"
tap_done
