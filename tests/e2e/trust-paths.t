#!/usr/bin/env bash
# The VM's pidfile and sockets live in a directory its user controls (the tool acts on them as
# that user). The user turns that directory into a symbolic link to a directory of root's, before the upgrade, while the
# pidfile is about to move aside, and while the old QEMU is about to be retired. inotify
# watches root's directory the whole time: the tool never creates, writes, renames or
# removes anything there, whether the upgrade is refused, rolled back or goes through; the
# VM keeps running throughout, and upgrades normally once the directory is back.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 13
command -v inotifywait >/dev/null || { echo "Bail out! inotifywait is missing: tests/install-deps.sh installs inotify-tools"; exit 1; }
base=$(mktemp -d)
_vm_paths+=("$base")
chmod 755 "$base"
victim=$base/victim
mkdir "$victim" "$base/user"
# What root keeps there, under the names the VM's files have: a tool that followed the link
# would link, move or remove them.
echo "root's" >"$victim/keep"
echo 1 >"$victim/qemu.pid"
echo "root's" >"$victim/qmp.sock"
chown nobody: "$base/user"
export QEMU_UPGRADE_STATE_DIR=$base/state

inotifywait -m -r -e create,delete,modify,attrib,moved_to,moved_from,close_write --format '%e %w%f' \
	"$victim" >"$base/events" 2>"$base/watch.err" &
vm_track_pid $!
end=$((SECONDS + 30))
until grep -q 'Watches established' "$base/watch.err"; do
	[ $SECONDS -lt $end ] || { echo "Bail out! inotifywait did not start: $(cat "$base/watch.err")"; exit 1; }
	sleep 0.1
done

TMPDIR=$base/user VM_OWNER=nobody VM_WRAP="setpriv --reuid=65534 --regid=65534 --clear-groups" vm_start trustpaths || exit 1
vm_wait_ready || exit 1
real=$VM_DIR
# The user's moves: their directory becomes a link to root's, and back.
swap_in() { runuser -u nobody -- sh -c "mv '$real' '$real.real' && ln -s '$victim' '$real'"; }
swap_out() { runuser -u nobody -- sh -c "rm '$real' && mv '$real.real' '$real'"; }
untouched() {
	[ ! -s "$base/events" ] && [ "$(ls -A "$victim" | tr '\n' ' ')" = "keep qemu.pid qmp.sock " ] &&
		[ "$(cat "$victim/keep" "$victim/qemu.pid" "$victim/qmp.sock" | tr '\n' ' ')" = "root's 1 root's " ] ||
		{ tap_diag "root's directory: $(ls -A "$victim" | tr '\n' ' '); events: $(tr '\n' ';' <"$base/events")"; false; }
}

# run_paused POINT: the tool in the background, standing at fault point POINT for a while
# (long enough for the swap); returns once it stands there. RUN_PID is its PID.
run_paused() {
	: >"$base/err"
	QEMU_UPGRADE_FAULT=$1:pause=4000 "$QU_BIN" --pid "$VM_PID" --json >"$base/out" 2>"$base/err" &
	RUN_PID=$!
	local end=$((SECONDS + 60))
	until grep -q "fault point $1: pausing" "$base/err"; do
		kill -0 "$RUN_PID" 2>/dev/null || { tap_diag "the tool ended early: $(cat "$base/err")"; return 1; }
		[ $SECONDS -lt $end ] || { tap_diag "the tool never reached fault point $1"; return 1; }
		sleep 0.05
	done
}

# 1. Swapped before the upgrade: the QMP socket is not where the link leads.
swap_in
"$QU_BIN" --pid "$VM_PID" --json --quiet >"$base/out" 2>"$base/err"
rc=$?
tap_diag "swapped before: rc $rc: $(cat "$base/err")"
[ $rc = 2 ] && grep -q "qmp.sock as uid 65534" "$base/err"
tap_ok $? "swapped before: refused (exit 2), the monitor is reached as the VM's user and is not there"
untouched
tap_ok $? "swapped before: root's directory untouched"
swap_out
[ "$(vm_runstate)" = running ] && [ "$(cat "$real/qemu.pid")" = "$VM_PID" ]
tap_ok $? "swapped before: the VM runs on, pidfile as it was"

# 2. Swapped just before the pidfile moves aside: the new QEMU (nobody) cannot write through
# the link either, so the upgrade rolls back; the tool touches nothing behind the link.
old=$VM_PID
run_paused 1 && swap_in
wait "$RUN_PID"
rc=$?
tap_diag "swapped at the start: rc $rc: $(tail -n 4 "$base/err" | tr '\n' ' ')"
[ $rc = 1 ] && grep -q "cannot keep $real/qemu.pid across the old QEMU's exit: " "$base/err"
tap_ok $? "swapped at the start: rolled back (exit 1); the pidfile could not be moved behind the link (a warning)"
untouched
tap_ok $? "swapped at the start: root's directory untouched"
swap_out
[ "$(vm_runstate)" = running ] && [ "$(cat "$real/qemu.pid")" = "$old" ] &&
	[ "$(qemu_pids_for "$real" | tr '\n' ' ')" = "$old " ]
tap_ok $? "swapped at the start: the old QEMU runs the guest alone, pidfile names it"
[ -z "$(ls "$real" | grep qemu-upgrade)" ]
tap_ok $? "swapped at the start: nothing of the tool's left in the VM's directory"

# 3. Swapped while the new QEMU waits for the state: the upgrade goes through. The old QEMU is
# retired by SIGKILL, which unlinks nothing, so nothing is kept or touched behind the link; the
# pidfile's spare link is settled as the VM's user, which the link refuses.
run_paused 3 && swap_in
wait "$RUN_PID"
rc=$?
new=$(json_get "$(cat "$base/out")" new_pid)
tap_diag "swapped before the retirement: rc $rc new $new: $(grep -i 'warning' "$base/err" | tr '\n' ' ')"
[ $rc = 0 ] && [ "$(json_get "$(cat "$base/out")" result)" = upgraded ] && ! grep -q "cannot keep" "$base/err"
tap_ok $? "swapped before the retirement: upgraded; no path behind the link kept or touched (a killed QEMU unlinks none)"
untouched
tap_ok $? "swapped before the retirement: root's directory untouched"
swap_out
VM_PID=$new
vm_track_pid "$VM_PID"
[ "$(cat "$real/qemu.pid")" = "$new" ] && [ "$(vm_runstate)" = running ] && proc_gone_soon "$old"
tap_ok $? "swapped before the retirement: the new QEMU runs the guest, pidfile names it, the old one is gone"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest makes progress, clean"

# 4. With the directory back, an ordinary upgrade; and root's directory still untouched.
rm -f "$real"/*.qemu-upgrade-old
vm_upgrade
rc=$?
tap_diag "after: rc $rc $(json_get "$REPORT" result) $(json_get "$REPORT" error)"
[ $rc = 0 ] && [ "$(json_get "$REPORT" result)" = upgraded ] && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "with the directory back: upgraded, guest clean"
untouched
tap_ok $? "root's directory untouched at the end"
tap_done
