#!/usr/bin/env bash
# The commit leaves the new QEMU configured for migration exactly as the old one was: every
# capability and parameter the upgrade set (x-ignore-shared above all) is back to the old
# QEMU's values. Without that, a later save of the VM writes no RAM and its load fails (found
# through libvirt: `virsh save` then `virsh restore` lost the guest). After each local
# strategy (zero-copy handover, a copy, a low-memory copy by postcopy, cpr-transfer on QEMU
# 10.0), the VM's state is saved to a file by migration, loaded into a fresh QEMU, and the
# guest runs on there with its memory checker clean.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 18
# migration_settings [SOCKET]: capabilities and the parameters an upgrade sets, one per line.
migration_settings() {
	local sock=${1:-$VM_QMP}
	vm_qmp "$sock" '{"execute":"query-migrate-capabilities"}' | jq -r '.return[] | "\(.capability)=\(.state)"' | sort
	vm_qmp "$sock" '{"execute":"query-migrate-parameters"}' |
		jq -r '.return | "max-bandwidth=\(."max-bandwidth") downtime-limit=\(."downtime-limit") tls-creds=\(."tls-creds")"'
}

# save_and_load NAME RAM: the VM's state through a file into a fresh QEMU of the same shape; the
# guest must go on there, clean. The saved VM is stopped afterwards.
save_and_load() {
	local name=$1 state=$VM_DIR/state.bin status="" end size
	# Stopped first: a live precopy under TCG before QEMU 9.0 loses guest writes (README).
	vm_qmp "$VM_QMP" '{"execute":"stop"}' >/dev/null
	vm_qmp "$VM_QMP" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:cat > $state\"}}" >/dev/null
	end=$((SECONDS + 120))
	while status=$(vm_qmp "$VM_QMP" '{"execute":"query-migrate"}' | jq -r '.return.status'); do
		case $status in completed | failed | cancelled) break ;; esac
		[ $SECONDS -lt $end ] || break
		sleep 0.2
	done
	size=$(stat -c %s "$state" 2>/dev/null || echo 0)
	tap_diag "$name: saved with status '$status', $size bytes"
	local saved_pid=$VM_PID saved_dir=$VM_DIR
	VM_RAM=$2 vm_start "$name-loaded" "${@:3}" -incoming "exec:cat $state" || return 1
	# Saved paused, it loads paused: resume it once the load is done.
	end=$((SECONDS + 120))
	until [ "$(vm_runstate 2>/dev/null)" = paused ] || [ $SECONDS -ge $end ]; do
		proc_gone "$VM_PID" && { tap_diag "$name: the fresh QEMU died loading the file: $(tail -n 2 "$VM_DIR/qemu.err" | tr '\n' ' ')"; break; }
		sleep 0.2
	done
	vm_qmp "$VM_QMP" '{"execute":"cont"}' >/dev/null 2>&1
	# No READY line comes again (the guest printed it before the save): its checker's passes do.
	local ok=0
	proc_gone "$VM_PID" || vm_memcheck_progress 120 && [ "$(vm_memcheck_errors)" = 0 ] && [ "$(vm_runstate)" = running ] || ok=1
	tap_diag "$name: loaded into PID $VM_PID: $(vm_memcheck_status)"
	vm_stop "$saved_pid"
	[ "$status" = completed ] && [ "$size" -gt $((32 << 20)) ] && [ $ok = 0 ]
}

vm_qemu10
q10=$Q10
# case NAME: the VM's RAM (VM_RAM), QEMU, extra arguments of the VM (vmargs) and of the tool.
for name in zero-copy copy postcopy cpr-transfer; do
	ram=memfd qemu=$QEMU vmargs=() args=() want=shared-ram-handover
	case $name in
	copy) ram=anon args=(--allow-copy) want=stop-and-copy ;; # TCG before 9.0 copies stopped
	postcopy) ram=anon args=(--low-memory) want=postcopy ;;
	cpr-transfer) qemu=$q10 vmargs=(-machine aux-ram-share=on) args=(--new-binary "$q10") want=cpr-transfer ;;
	esac
	QEMU=$qemu VM_RAM=$ram vm_start "settings-$name" "${vmargs[@]}" || exit 1
	vm_wait_ready 120 || exit 1
	before=$(migration_settings)
	vm_upgrade "${args[@]}"
	tap_diag "$name: $(json_get "$REPORT" result) $(json_get "$REPORT" strategy) $(json_get "$REPORT" error)"
	[ "$(json_get "$REPORT" result)" = upgraded ] && [ "$(json_get "$REPORT" strategy)" = "$want" ]
	tap_ok $? "$name: upgraded by $want ($(json_get "$REPORT" strategy))"
	after=$(migration_settings)
	[ -n "$before" ] && [ "$after" = "$before" ] ||
		tap_diag "$name: before: $(tr '\n' ' ' <<<"$before"); after: $(tr '\n' ' ' <<<"$after")"
	[ -n "$before" ] && [ "$after" = "$before" ]
	tap_ok $? "$name: the new QEMU's migration settings are the old one's (x-ignore-shared $(grep -o 'x-ignore-shared=[a-z]*' <<<"$after"))"
	QEMU=$qemu save_and_load "$name" $ram "${vmargs[@]}"
	tap_ok $? "$name: saved to a file (all of its RAM) and loaded into a fresh QEMU, the guest runs on there, clean"
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
	tap_ok $? "$name: clean after the load"
done

# The tool killed right after its commit (fault point 7): its guardian finishes the upgrade,
# and puts the settings back too.
vm_start settings-guardian || exit 1
vm_wait_ready || exit 1
before=$(migration_settings)
export QEMU_UPGRADE_STATE_DIR=$VM_DIR/state
old=$VM_PID
QEMU_UPGRADE_FAULT=7:kill "$QU_BIN" --pid "$old" --quiet 2>"$VM_DIR/err"
rc=$?
end=$((SECONDS + 60))
until [ -z "$(ls -A "$QEMU_UPGRADE_STATE_DIR" 2>/dev/null)" ] && proc_gone "$old" || [ $SECONDS -ge $end ]; do sleep 0.1; done
VM_PID=$(cat "$VM_DIR/qemu.pid")
vm_track_pid "$VM_PID"
tap_diag "killed after the commit: exit $rc, new PID $VM_PID, journal: $(ls -A "$QEMU_UPGRADE_STATE_DIR" 2>/dev/null)"
state=$(vm_runstate)
[ "$rc" = 137 ] && [ "$VM_PID" != "$old" ] && proc_gone "$old" && [ "$state" = running ]
tap_ok $? "killed after its commit: the guardian finished the upgrade (exit $rc, new PID $VM_PID, old QEMU $(proc_gone "$old" && echo gone || echo "still there: $(grep State "/proc/$old/status" 2>/dev/null)"), run state '$state')"
after=$(migration_settings)
[ "$after" = "$before" ] || tap_diag "before: $(tr '\n' ' ' <<<"$before"); after: $(tr '\n' ' ' <<<"$after")"
[ -n "$before" ] && [ "$after" = "$before" ]
tap_ok $? "and the new QEMU's migration settings are the old one's again"
tap_done
