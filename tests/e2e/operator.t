#!/usr/bin/env bash
# What an operator reads and runs before trusting the tool: --help names every mode with an
# example, the man page renders, `check` describes this host, and `inspect` / --dry-run show
# the plan for VMs of each kind while changing nothing.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 13
help=$("$QU_BIN" --help)
tap_is "$?" 0 "--help exits 0"
for mode in "--pid PID" "--all" "--recover" "inspect --pid" "check" "dump-stream" "--dry-run" "--json" "--new-binary" \
	"--remote HOST" "--copy-storage" "--shared-storage" "agent"; do
	grep -q -- "$mode" <<<"$help" || { tap_diag "--help does not mention $mode"; false; }
done
tap_ok $? "--help names every mode and option"
[ "$(grep -c '^  qemu-upgrade ' <<<"$help")" -ge 5 ]
tap_ok $? "--help gives examples"
page=$(MANWIDTH=100 man -l "$QU_ROOT/docs/qemu-upgrade.1" 2>&1)
grep -q 'EXIT STATUS' <<<"$page" && grep -q -- '--recover' <<<"$page" && grep -q -- '--all' <<<"$page" &&
	grep -q 'qemu-upgrade.conf' <<<"$page" && grep -q -- '--remote' <<<"$page" && grep -q 'pki/qemu-upgrade' <<<"$page"
tap_ok $? "the man page renders with modes, exit status and files"

out=$("$QU_BIN" check --binary "$QEMU" --json)
rc=$?
tap_diag "check: $(jq -c '[.checks[] | select(.ok | not) | .name]' <<<"$out")"
[ "$rc" = 0 ] && jq -e '.result == "ok" and ([.checks[] | select(.name == "pidfd_getfd" and .ok)] | length == 1)' <<<"$out" >/dev/null
tap_ok $? "check: this host has what the zero-copy upgrade needs, and says so"
jq -e '[.checks[] | select(.name == "x-ignore-shared")][0].ok' <<<"$out" >/dev/null
tap_ok $? "check --binary: asks the QEMU itself for x-ignore-shared"
err=$("$QU_BIN" check --binary /nonexistent/qemu 2>&1)
tap_is "$?" 1 "check --binary with a missing binary exits 1"

# inspect and --dry-run change nothing: same process, settings, files (a state directory of
# our own: other tests' upgrades come and go in the shared one).
export QEMU_UPGRADE_STATE_DIR=$(mktemp -d)
_vm_paths+=("$QEMU_UPGRADE_STATE_DIR")
snapshot() {
	echo "$VM_PID $(vm_qmp "$VM_QMP" '{"execute":"query-migrate-capabilities"}' | md5sum)"
	vm_qmp "$VM_QMP" '{"execute":"query-migrate-parameters"}' | md5sum
	qemu_pids_for "$VM_DIR" | tr '\n' ' '
	ls -A "$VM_DIR" "$QEMU_UPGRADE_STATE_DIR" 2>/dev/null | tr '\n' ' '
}
for kind in memfd file anon; do
	VM_RAM=$kind vm_start "inspect-$kind" || exit 1
	before=$(snapshot)
	plan=$("$QU_BIN" inspect --pid "$VM_PID" --json --quiet 2>/dev/null)
	dry=$("$QU_BIN" --pid "$VM_PID" --dry-run --quiet 2>/dev/null)
	after=$(snapshot)
	if [ "$kind" = anon ]; then
		[ "$(json_get "$plan" result)" = refused ] && grep -q "^refused: *1 blocker" <<<"$dry" &&
			grep -q "^  - .*would have to be copied" <<<"$dry"
	else
		[ "$(json_get "$plan" result)" = planned ] && grep -q "strategy: *shared-ram-handover" <<<"$dry" &&
			grep -q "memory needed" <<<"$dry" && grep -q "expected pause" <<<"$dry"
	fi
	tap_ok $? "$kind RAM: inspect and --dry-run say what would happen"
	[ "$before" = "$after" ]
	tap_ok $? "$kind RAM: nothing changed"
done
tap_done
