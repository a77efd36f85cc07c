#!/usr/bin/env bash
# The low-memory copy (postcopy with release-ram). An anonymous-RAM guest rewriting most of
# its RAM runs in a memory cgroup (as libvirt runs VMs) whose limit leaves room for far less
# than a second copy: with --allow-copy the plan picks postcopy by itself and says why and
# what the risk is; the upgrade stays within the limit (the cgroup's peak shows what it took),
# the guest checks its own memory, and the next upgrade is zero-copy. A limit too small even
# for postcopy is refused with the numbers, the VM untouched. A tool killed after the
# postcopy switch leaves its guardian to finish forward. QEMU 10.0 (TCG >= 9.0: a live
# postcopy) moves a memfd guest the same way.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/cgroup.sh"

memcg_new qu-lowmem
tap_plan 18

VM_WRAP=$MEMCG_WRAP VM_RAM=anon VM_MEM=512M VM_MEMCHECK_MIB=400 vm_start lowmem || exit 1
vm_wait_ready 180 || exit 1
sleep 1
base=$(memcg_usage)
tap_diag "the VM's cgroup uses $((base >> 20)) MiB for a 512 MiB guest"

# Room for 64 MiB more: not even a postcopy fits.
memcg_limit $((base + (64 << 20)))
old=$VM_PID
err=$("$QU_BIN" --pid "$old" --allow-copy --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "64 MiB room: exit $rc: $err"
[ "$rc" = 3 ] && grep -q "low-memory copy fits" <<<"$err" && grep -q "memory limit of cgroup $MEMCG leaves" <<<"$err"
tap_ok $? "too little room even for postcopy: refused, naming the cgroup and the numbers"
[ "$(cat "$VM_DIR/qemu.pid")" = "$old" ] && [ "$(vm_runstate)" = running ] && vm_memcheck_progress 30
tap_ok $? "the VM was not touched and runs on"

# Room for 200 MiB more: a precopy (a second copy, ~570 MiB) would not fit, postcopy does.
memcg_limit $((base + (200 << 20)))
plan=$("$QU_BIN" inspect --pid "$old" --allow-copy --json --quiet)
tap_diag "plan: $(jq -c '{strategy, warning, memory_needed_bytes, memory_room_bytes}' <<<"$plan")"
[ "$(json_get "$plan" strategy)" = postcopy ] && jq -e '.warning | test("guest is lost") and test("precopy needs about")' <<<"$plan" >/dev/null
tap_ok $? "with --allow-copy the plan picks postcopy by itself, says why and warns of the risk"
text=$("$QU_BIN" inspect --pid "$old" --allow-copy --quiet)
grep -q '^WARNING: .*if either QEMU dies before the copy ends, the guest is lost' <<<"$text"
tap_ok $? "the plan in words carries the warning"

oom_before=$(memcg_oom_kills)
memcg_watch_start
vm_upgrade --allow-copy
memcg_watch_stop
peak=$MEMCG_WATCH_PEAK
report=$REPORT
tap_diag "postcopy: $report $(cat "$VM_DIR/err")"
tap_diag "peak extra in the cgroup: $(((peak - base) >> 20)) MiB for a 512 MiB guest"
[ "$(json_get "$report" result)" = upgraded ] && [ "$(json_get "$report" strategy)" = postcopy ] &&
	[ "$(json_get "$report" ram_copied_bytes)" -gt $((300 << 20)) ]
tap_ok $? "upgraded by postcopy, the guest's RAM copied once"
tap_check "the old QEMU is gone" proc_gone_soon "$old"
[ $((peak - base)) -lt $((128 << 20)) ] && [ "$(memcg_oom_kills)" = "$oom_before" ]
tap_ok $? "the copy stayed within its bound: $(((peak - base) >> 20)) MiB extra at the peak (< 128 MiB), no OOM kill"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ] && [ "$(vm_runstate)" = running ]
tap_ok $? "the guest finds its memory intact and runs" ||
	tap_diag "serial: $(tail -n 4 "$VM_SERIAL" | tr '\n' '|')"
awk -v p="$(json_get "$report" pause_ms)" 'BEGIN { exit !(p > 0 && p < 1000) }'
tap_ok $? "the guest paused $(json_get "$report" pause_ms) ms (device state only; pages follow)"

old=$VM_PID
vm_upgrade
report=$REPORT
tap_diag "again: $report"
[ "$(json_get "$report" strategy)" = shared-ram-handover ] && [ "$(json_get "$report" ram_copied_bytes)" -lt $((1 << 20)) ] &&
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the next upgrade is zero-copy (< 1 MiB) and the guest is clean"
memcg_limit max

# The tool dies right after the switch: only forward is possible, and its guardian goes there.
VM_RAM=anon VM_MEM=256M VM_MEMCHECK_MIB=160 vm_start lowmem-kill || exit 1
vm_wait_ready 180 || exit 1
export QEMU_UPGRADE_STATE_DIR=$VM_DIR/state
old=$VM_PID
QEMU_UPGRADE_FAULT=9:kill "$QU_BIN" --pid "$old" --low-memory --quiet 2>"$VM_DIR/err"
rc=$?
for _ in $(seq 300); do [ -z "$(ls -A "$QEMU_UPGRADE_STATE_DIR" 2>/dev/null)" ] && break; sleep 0.1; done
owners=$(qemu_pids_for "$VM_DIR")
tap_diag "killed after the switch: exit $rc, owners: $(echo $owners)"
[ "$rc" = 137 ] && [ -z "$(ls -A "$QEMU_UPGRADE_STATE_DIR" 2>/dev/null)" ] && [ "$(wc -w <<<"$owners")" = 1 ] && [ "$owners" != "$old" ]
tap_ok $? "the guardian finished the postcopy: one QEMU, the new one, and no journal left"
VM_PID=$owners
vm_track_pid "$VM_PID" 2>/dev/null
[ "$(vm_runstate)" = running ] && [ "$(cat "$VM_DIR/qemu.pid")" = "$VM_PID" ] &&
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "it runs the guest, clean, the pidfile names it"
unset QEMU_UPGRADE_STATE_DIR

# The new QEMU dies right after the switch: the guest's pages are split and some are freed in
# the old QEMU, which must then never be resumed (it would run the guest on lost memory).
VM_RAM=anon VM_MEM=256M VM_MEMCHECK_MIB=160 vm_start lowmem-lost || exit 1
vm_wait_ready 180 || exit 1
export QEMU_UPGRADE_STATE_DIR=$VM_DIR/state
old=$VM_PID
# The tool stands at fault point 9, right after the switch, until the new QEMU is killed (a
# condition, not a delay: on a loaded machine the scan for the new QEMU may take seconds).
QEMU_UPGRADE_FAULT=9:pause=8000 "$QU_BIN" --pid "$old" --low-memory >/dev/null 2>"$VM_DIR/err" &
tool=$!
for _ in $(seq 1200); do
	grep -q "fault point 9: pausing" "$VM_DIR/err" && break
	kill -0 "$tool" 2>/dev/null || break
	sleep 0.05
done
new=$(started_qemu "$VM_DIR/err")
tap_diag "the tool after the switch: $(grep -c 'fault point 9: pausing' "$VM_DIR/err") pause line(s); the new QEMU: ${new:-none}"
[ -n "$new" ] && kill -9 "$new"
wait "$tool"
rc=$?
for _ in $(seq 300); do [ -z "$(ls -A "$QEMU_UPGRADE_STATE_DIR" 2>/dev/null)" ] && break; sleep 0.1; done
tap_diag "new QEMU killed after the switch: exit $rc: $(tr '\n' ' ' <"$VM_DIR/err" | cut -c1-400)"
[ "$rc" = 4 ] && grep -q "no way back" "$VM_DIR/err"
tap_ok $? "the tool exits 4: past the point of no return, not rolled back"
state=$(vm_runstate)
[ -e "/proc/$old" ] && [ "$state" != running ] && grep -q "the guest is lost; the old QEMU is left paused" "$VM_DIR/err"
tap_ok $? "the old QEMU is not resumed on its incomplete memory (run state '$state'); the guest is reported lost"
unset QEMU_UPGRADE_STATE_DIR

# QEMU 10.0: memfd RAM it would send anyway, moved live by postcopy into a shared file backend.
vm_qemu10
QEMU=$Q10 VM_MEMCHECK_MIB=160 vm_start lowmem-10 || exit 1
vm_wait_ready 180 || exit 1
old=$VM_PID
vm_upgrade --new-binary "$Q10" --low-memory
report=$REPORT
tap_diag "10.0: $report $(cat "$VM_DIR/err")"
[ "$(json_get "$report" result)" = upgraded ] && [ "$(json_get "$report" strategy)" = postcopy ] &&
	[ "$(json_get "$report" new_version)" = "$("$Q10" --version | sed -n 's/.*version \([0-9.]*\).*/\1/p')" ]
tap_ok $? "QEMU 10.0 memfd guest upgraded by a live postcopy"
tap_check "the old 10.0 QEMU is gone" proc_gone_soon "$old"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the 10.0 guest is clean"
vm_upgrade --new-binary "$Q10"
report=$REPORT
[ "$(json_get "$report" strategy)" = shared-ram-handover ] && vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "and then zero-copy on 10.0 too"
tap_done
