#!/usr/bin/env bash
# Memory admission across VMs: two anonymous-RAM VMs share a memory cgroup whose limit leaves
# room for one copy of a guest, not two. Two upgrades with --allow-copy started at the same
# moment each plan a copy that fits alone; the host-wide ledger makes the second wait until
# the first has freed its memory. Both end upgraded, no QEMU is OOM-killed, both guests are
# clean, and the one that waited says so.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/cgroup.sh"

memcg_new qu-admission
tap_plan 6
# One ledger for both upgrades, as /run/qemu-upgrade is for a host.
export QEMU_UPGRADE_STATE_DIR=${TMPDIR:-/tmp}/qu-admission-state-$$
vm_defer "rm -rf $QEMU_UPGRADE_STATE_DIR"

VM_WRAP=$MEMCG_WRAP VM_RAM=anon VM_MEM=512M VM_MEMCHECK_MIB=400 vm_start adm-a || exit 1
dir_a=$VM_DIR pid_a=$VM_PID
VM_WRAP=$MEMCG_WRAP VM_RAM=anon VM_MEM=512M VM_MEMCHECK_MIB=400 vm_start adm-b || exit 1
dir_b=$VM_DIR pid_b=$VM_PID
VM_SERIAL=$dir_a/serial.log vm_wait_ready 180 || exit 1
VM_SERIAL=$dir_b/serial.log vm_wait_ready 180 || exit 1
sleep 1
base=$(memcg_usage)
memcg_limit $((base + (900 << 20)))
tap_diag "two VMs use $((base >> 20)) MiB; the cgroup leaves 900 MiB: one copy (~830 MiB), not two"

oom_before=$(memcg_oom_kills)
"$QU_BIN" --pid "$pid_a" --allow-copy --json --quiet >"$dir_a/report" 2>"$dir_a/err" &
job_a=$!
"$QU_BIN" --pid "$pid_b" --allow-copy --json --quiet >"$dir_b/report" 2>"$dir_b/err" &
job_b=$!
wait "$job_a"; rc_a=$?
wait "$job_b"; rc_b=$?
ra=$(cat "$dir_a/report") rb=$(cat "$dir_b/report")
tap_diag "A: exit $rc_a: $ra $(cat "$dir_a/err")"
tap_diag "B: exit $rc_b: $rb $(cat "$dir_b/err")"
for d in "$dir_a" "$dir_b"; do vm_track_pid "$(cat "$d/qemu.pid")" 2>/dev/null; done
[ "$rc_a" = 0 ] && [ "$rc_b" = 0 ] && [ "$(json_get "$ra" result)" = upgraded ] && [ "$(json_get "$rb" result)" = upgraded ]
tap_ok $? "both VMs upgraded by a copy"
[ "$(memcg_oom_kills)" = "$oom_before" ] && [ "$(qemu_pids_for "$dir_a" | wc -w)" = 1 ] && [ "$(qemu_pids_for "$dir_b" | wc -w)" = 1 ]
tap_ok $? "no QEMU was OOM-killed; each guest has exactly one QEMU"
awk -v a="$(json_get "$ra" memory_wait_ms)" -v b="$(json_get "$rb" memory_wait_ms)" 'BEGIN { exit !((a > 100) != (b > 100)) }'
tap_ok $? "exactly one of them waited for the other's memory (A $(json_get "$ra" memory_wait_ms) ms, B $(json_get "$rb" memory_wait_ms) ms)"
for d in "$dir_a" "$dir_b"; do
	VM_DIR=$d VM_QMP=$d/qmp.sock VM_SERIAL=$d/serial.log VM_PID=$(cat "$d/qemu.pid")
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ] && [ "$(vm_runstate)" = running ]
	tap_ok $? "guest ${d##*/vm-} is clean and runs"
done
[ ! -s "$QEMU_UPGRADE_STATE_DIR/memory.ledger" ]
tap_ok $? "the ledger is empty afterwards"
memcg_limit max
tap_done
