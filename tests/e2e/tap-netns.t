#!/usr/bin/env bash
# Networking carried across upgrades, in a network namespace. VM 1's tap is opened by its
# parent and passed as -netdev tap,fd=3 (as libvirt does); VM 2's QEMU opens a two-queue tap
# itself by name, with a downscript. The host pings each guest every 10 ms through the
# upgrades: at most a few pings may go unanswered (the guest pauses for a few ms), the new
# QEMU lives in the VM's namespace, and the old QEMU's exit runs no downscript. The upgraded
# QEMU's exit does, once, for the named tap (upgrade/tapwatch.c; QEMU runs none for fd=).
# The guest uses one of the two queues: the other stays detached in every QEMU, also after an
# upgrade that failed once the new QEMU had started, or whose tool was killed then
# (upgrade/fdpass/tapsteer.h).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/net.sh"

tap_plan 36
ns=qu-tap-$$
ip netns add "$ns" || { echo "Bail out! cannot create a network namespace"; exit 1; }
vm_defer "ip netns del $ns"
tapopen=$QU_BUILD/tests/helpers/tapopen
tapqueues=$QU_BUILD/tests/helpers/tapqueues
# no_steering WHEN: the tool's steering program is gone (the tap holds it until it is
# removed; the kernel frees it a moment later).
no_steering() {
	local n end=$((SECONDS + 10))
	while n=$("$tapqueues" --steering) && [ "$n" != 0 ] && [ $SECONDS -lt $end ]; do sleep 0.1; done
	[ "$n" = 0 ]
	tap_ok $? "named 2-queue tap: no steering program left $1 ($n loaded)"
}
marker=$(mktemp -u)
_vm_paths+=("$marker" "$marker.sh")
printf '#!/bin/sh\necho "downscript ran for $1" >>%s\n' "$marker" >"$marker.sh"
chmod +x "$marker.sh"

VM_WRAP="ip netns exec $ns $tapopen tap0 3" VM_APPEND="net_ip=10.0.2.15/24" \
	vm_start tap-fd -netdev tap,id=n0,fd=3 -device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01 || exit 1
dir1=$VM_DIR pid1=$VM_PID
VM_WRAP="ip netns exec $ns" VM_APPEND="net_ip=10.0.3.15/24" \
	vm_start tap-name -netdev "tap,id=n1,ifname=tap1,script=no,downscript=$marker.sh,queues=2" \
	-device virtio-net-pci,netdev=n1,mq=on,vectors=6,mac=52:54:00:00:00:02 || exit 1
dir2=$VM_DIR pid2=$VM_PID
ip -n "$ns" link set tap0 up && ip -n "$ns" addr add 10.0.2.1/24 dev tap0
ip -n "$ns" link set tap1 up && ip -n "$ns" addr add 10.0.3.1/24 dev tap1
for d in "$dir1" "$dir2"; do VM_SERIAL=$d/serial.log VM_PID=$(cat "$d/qemu.pid") vm_wait_ready || exit 1; done

queues=$("$tapqueues" "$pid2")
[ "$queues" = "attached detached" ]
tap_ok $? "named 2-queue tap: the guest uses one queue, the other is detached ($queues)"
for round in 1 2; do
	upgrade_pinging "$ns" tap0 "fd tap, round $round" "$dir1" 10.0.2.15
	upgrade_pinging "$ns" tap1 "named 2-queue tap, round $round" "$dir2" 10.0.3.15
	now=$("$tapqueues" "$(cat "$dir2/qemu.pid")")
	[ "$now" = "$queues" ]
	tap_ok $? "named 2-queue tap, round $round: the new QEMU's queues as the old one had them ($now)"
	no_steering "after round $round"
done
# While the new QEMU starts (the tool held at fault point 2 for a while), the tap is steered.
QEMU_UPGRADE_FAULT=2:pause=4000 "$QU_BIN" --pid "$(cat "$dir2/qemu.pid")" --json --quiet >"$dir2/report" 2>"$dir2/err" &
tool=$!
end=$((SECONDS + 30))
while n=$("$tapqueues" --steering) && [ "$n" = 0 ] && [ $SECONDS -lt $end ] && kill -0 "$tool" 2>/dev/null; do sleep 0.05; done
[ "$n" = 1 ]
tap_ok $? "named 2-queue tap: one steering program while the new QEMU starts ($n)"
wait "$tool"
vm_track_pid "$(cat "$dir2/qemu.pid")"
[ "$(json_get "$(cat "$dir2/report")" result)" = upgraded ]
tap_ok $? "named 2-queue tap: that upgrade went through ($(json_get "$(cat "$dir2/report")" result) $(cat "$dir2/err"))"
no_steering "after it"
# after_rollback WHO: the old QEMU's queues are as they were and the guest answers pings.
after_rollback() {
	local now
	now=$("$tapqueues" "$old")
	[ "$now" = "$queues" ]
	tap_ok $? "named 2-queue tap: after $1 the old QEMU's queues are as they were ($now)"
	ip netns exec "$ns" ping -i 0.01 -c 100 -q 10.0.3.15 >"$dir2/ping" 2>&1
	tap_ok $? "named 2-queue tap: after $1 the guest answers 100 pings of 100 ($(grep -o '[0-9]* received' "$dir2/ping"))"
	no_steering "after $1"
}
# A failure once the new QEMU has started: the old QEMU keeps the guest and its queues as
# they were (the unused one was attached for the new QEMU's start, and detached again).
old=$(cat "$dir2/qemu.pid")
QEMU_UPGRADE_FAULT=2 "$QU_BIN" --pid "$old" --quiet >/dev/null 2>"$dir2/err"
rc=$?
[ "$rc" = 1 ] && [ "$(cat "$dir2/qemu.pid")" = "$old" ] && [ "$(vm_runstate "$dir2/qmp.sock" 2>/dev/null)" = running ]
tap_ok $? "named 2-queue tap: a fault after the new QEMU started: exit 1, the old QEMU runs ($rc, $(tr '\n' ' ' <"$dir2/err" | cut -c1-200))"
after_rollback "the rollback"
# The tool killed at the same point: its guardian settles the upgrade from the journal, and
# detaches the queue the tool had attached.
QEMU_UPGRADE_STATE_DIR=$dir2/state QEMU_UPGRADE_FAULT=2:kill "$QU_BIN" --pid "$old" --quiet >/dev/null 2>"$dir2/err"
rc=$?
end=$((SECONDS + 60))
while [ -n "$(ls -A "$dir2/state" 2>/dev/null)" ] && [ $SECONDS -lt $end ]; do sleep 0.1; done
[ "$rc" = 137 ] && [ -z "$(ls -A "$dir2/state" 2>/dev/null)" ] && [ "$(vm_runstate "$dir2/qmp.sock" 2>/dev/null)" = running ]
tap_ok $? "named 2-queue tap: the tool killed after the new QEMU started: the guardian settled, the old QEMU runs ($rc, state: $(ls "$dir2/state" 2>&1 | tr '\n' ' '))"
after_rollback "the guardian's rollback"
[ ! -e "$marker" ]
tap_ok $? "no downscript ran when the old QEMUs retired"
for d in "$dir1" "$dir2"; do
	VM_SERIAL=$d/serial.log VM_PID=$(cat "$d/qemu.pid")
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
	tap_ok $? "guest in ${d##*/} is clean and running"
done
vm_stop "$(cat "$dir2/qemu.pid")"
end=$((SECONDS + 30))
until [ -e "$marker" ] || [ $SECONDS -ge $end ]; do sleep 0.1; done
sleep 0.5 # a second run would follow at once
[ "$(cat "$marker" 2>/dev/null)" = "downscript ran for tap1" ]
tap_ok $? "the upgraded QEMU's exit ran the named tap's downscript once ($(cat "$marker" 2>/dev/null | tr '\n' ' '))"
tap_done
