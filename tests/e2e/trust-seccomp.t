#!/usr/bin/env bash
# Seccomp, handled knowingly. A VM under QEMU's own -sandbox (as libvirt runs them: one filter,
# installed by QEMU, and no_new_privs) upgrades twice: its new QEMU installs the same filter
# itself, no more and no fewer filters than before. A VM whose starter put it under a filter of
# its own (as systemd's SystemCallFilter= or a container runtime would) is refused before
# anything is touched, with the reason: such a filter cannot be read or carried, and the new
# QEMU must not run with less confinement.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 7
wrap=$QU_BUILD/tests/helpers/seccompwrap
[ -x "$wrap" ] || { echo "Bail out! $wrap is missing: run make units"; exit 1; }
seccomp_of() { grep -E '^(NoNewPrivs|Seccomp|Seccomp_filters):' "/proc/$1/status" | tr -s '\t\n' '  '; }

# 1. QEMU's own filter (libvirt also denies elevateprivileges, spawn and resourcecontrol,
# which -daemonize needs).
VM_OWNER=nobody VM_WRAP="setpriv --reuid=65534 --regid=65534 --clear-groups" \
	vm_start trustsandbox -sandbox on,obsolete=deny || exit 1
vm_wait_ready || exit 1
before=$(seccomp_of "$VM_PID")
tap_diag "old QEMU: $before"
grep -q 'Seccomp: 2 Seccomp_filters: 1' <<<"$before"
tap_ok $? "the VM runs under QEMU's own filter (one)"
for round in 1 2; do
	old=$VM_PID
	vm_upgrade
	tap_diag "round $round: $(json_get "$REPORT" result) $(json_get "$REPORT" error) $(tail -n 2 "$VM_DIR/err" | tr '\n' ' ')"
	[ "$(json_get "$REPORT" result)" = upgraded ] && [ "$VM_PID" != "$old" ] && [ "$(seccomp_of "$VM_PID")" = "$before" ]
	tap_ok $? "round $round: upgraded; the new QEMU under its own filter again, as before ($(seccomp_of "$VM_PID"))"
done
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest makes progress, clean"

# 2. A filter of its starter's.
VM_OWNER=nobody VM_WRAP="$wrap setpriv --reuid=65534 --regid=65534 --clear-groups" vm_start trustfilter || exit 1
vm_wait_ready || exit 1
tap_diag "old QEMU: $(seccomp_of "$VM_PID")"
grep -q 'Seccomp_filters:[[:space:]]*1' "/proc/$VM_PID/status"
tap_ok $? "the second VM runs under its starter's filter"
old=$VM_PID
vm_upgrade
rc=$?
tap_diag "upgrade: rc $rc $(json_get "$REPORT" result): $(json_get "$REPORT" refusal)"
[ $rc = 3 ] && json_get "$REPORT" refusal | grep -q "1 seccomp filter(s) that whatever started it installed"
tap_ok $? "refused (exit 3): the filter is named as the reason"
[ "$VM_PID" = "$old" ] && [ "$(vm_runstate)" = running ] && [ "$(qemu_pids_for "$VM_DIR" | tr '\n' ' ')" = "$old " ]
tap_ok $? "untouched: the same QEMU runs the guest, alone"
tap_done
