#!/usr/bin/env bash
# --all (the package hook's command, run as root after every dpkg run) never runs a binary
# that root did not install. A user (nobody) copies QEMU into a directory of their own under
# the name qemu-system-x86_64, starts a VM from it, and swaps the file for a program of their
# own: to --all that VM looks like one whose binary a package upgrade replaced. --all, dry
# run or not, lists it as left alone with the reason and never executes the swapped file.
# Upgraded explicitly with --pid, the user's own build is probed as that user, never as root.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 8
base=$(mktemp -d)
_vm_paths+=("$base")
chmod 755 "$base"
mkdir "$base/u"
chown nobody: "$base/u"
bin=$base/u/qemu-system-x86_64
cp "$QEMU" "$bin"
chown nobody: "$bin"
log=$base/ran.log
: >"$log"
chmod 666 "$log"

QEMU=$bin VM_OWNER=nobody \
	VM_WRAP="setpriv --reuid=65534 --regid=65534 --clear-groups env QEMU_MODULE_DIR=/usr/lib/x86_64-linux-gnu/qemu" \
	vm_start trustall -L /usr/share/qemu -L /usr/share/seabios || exit 1
vm_wait_ready || exit 1
# The swap, as the user: a program that records who runs it, then runs QEMU.
runuser -u nobody -- sh -c "rm -f '$bin' && printf '#!/bin/sh\necho \"uid=\$(id -u) \$*\" >>%s\nexec %s \"\$@\"\n' '$log' '$QEMU' >'$bin' && chmod 755 '$bin'"
grep -q "^$bin (deleted)\$" <(readlink "/proc/$VM_PID/exe") && [ -x "$bin" ] && [ "$(stat -c %u "$bin")" = 65534 ]
tap_ok $? "the VM's binary was swapped by its user: /proc/PID/exe says deleted, the user's program is at the path"

# all_entry JSON: the VM's entry in --all's left_alone list.
all_entry() { jq -c --argjson p "$VM_PID" '.left_alone[] | select(.pid == $p)' <<<"$1"; }

for mode in --dry-run ""; do
	out=$("$QU_BIN" --all --binary "$bin" $mode --json 2>"$base/err")
	rc=$?
	entry=$(all_entry "$out")
	tap_diag "--all $mode: rc $rc, $entry $(cat "$base/err")"
	[ $rc = 0 ] && grep -q "not a binary root installed" <<<"$entry" && grep -q "belongs to another user\|uid 65534" <<<"$entry" &&
		[ "$(jq '.vms | length' <<<"$out")" = 0 ]
	tap_ok $? "--all ${mode:-(real run)}: the VM is left alone, and the reason names the user's directory"
done
tap_diag "the swapped program ran: $(tr '\n' ';' <"$log")"
[ ! -s "$log" ]
tap_ok $? "the swapped program was never executed"
[ "$(vm_runstate)" = running ] && [ "$(cat "$VM_DIR/qemu.pid")" = "$VM_PID" ]
tap_ok $? "the VM is untouched and running"

# Explicitly, the user's own build is used as the user's: probed as nobody, never as root.
out=$("$QU_BIN" --pid "$VM_PID" --dry-run --json --quiet 2>"$base/err")
rc=$?
tap_diag "--pid --dry-run: rc $rc $(json_get "$out" result) $(cat "$base/err"); ran: $(tr '\n' ';' <"$log")"
[ $rc = 0 ] && [ "$(json_get "$out" result)" = planned ]
tap_ok $? "--pid with the user's own build: planned"
[ -s "$log" ] && ! grep -v '^uid=65534 ' "$log"
tap_ok $? "the user's build ran only as the user (uid 65534)"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest makes progress, clean"
tap_done
