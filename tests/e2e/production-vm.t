#!/usr/bin/env bash
# A VM set up the way a management daemon runs one, upgraded twice while the host pings it:
# in a network namespace, on a tap its parent opened for it and passed as fd 3 (as libvirt
# does), as the unprivileged user nobody, in cgroups of its own (v1 memory and cpu, and v2),
# pinned to CPU 0, with a serial log, a QMP socket and a pidfile. The host pings the guest
# every 10 ms during each upgrade. Afterwards: pings lost stay within the pause, the serial
# log continues in the same file, QMP answers at the same path, the pidfile names the new
# PID, the new QEMU has the old one's user, cgroups, affinity and namespace, and the guest
# finds its memory intact.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/cgroup.sh"

tap_plan 17
ns=qu-prod-$$
ip netns add "$ns" || { echo "Bail out! cannot create a network namespace"; exit 1; }
vm_defer "ip netns del $ns"
cg_all_new qu-prod
cg=qu-prod-$$
wrap=$(mktemp)
_vm_paths+=("$wrap")
{
	echo '#!/bin/sh'
	for d in "${CGDIRS[@]}"; do echo "echo \$\$ >$d/cgroup.procs"; done
	# Cgroups first (ip netns exec mounts a sysfs of the namespace over /sys); then, in the
	# namespace, the parent (root) opens the tap and QEMU runs as nobody with it as fd 3.
	echo "exec ip netns exec $ns $QU_BUILD/tests/helpers/tapopen tap0 3 setpriv --reuid=65534 --regid=65534 --clear-groups taskset -c 0 \"\$@\""
} >"$wrap"
chmod +x "$wrap"
VM_OWNER=nobody VM_WRAP=$wrap VM_APPEND="net_ip=10.0.5.15/24" \
	vm_start prod -netdev tap,id=n0,fd=3 -device virtio-net-pci,netdev=n0,mac=52:54:00:00:05:01 || exit 1
ip -n "$ns" link set tap0 up && ip -n "$ns" addr add 10.0.5.1/24 dev tap0
vm_wait_ready || exit 1

facts() {
	local p=$1
	grep -E '^(Uid|Gid|Cpus_allowed_list):' "/proc/$p/status" | tr -s '\t' ' '
	echo "cgroup $(sort "/proc/$p/cgroup" | tr '\n' ' ')"
	echo "netns $(readlink "/proc/$p/ns/net")"
}
before=$(facts "$VM_PID")
grep -q '^Uid: 65534' <<<"$before" && grep -q "cgroup.*$cg" <<<"$before" && grep -q 'Cpus_allowed_list: 0$' <<<"$before" &&
	ip netns exec "$ns" ping -c 3 -W 5 10.0.5.15 >/dev/null
tap_ok $? "the VM runs as nobody in its namespace and cgroups, pinned to CPU 0, and answers pings" || tap_diag "$(tr "\n" "|" <<<"$before")"
serial_inode=$(stat -c %i "$VM_SERIAL")
first_line=$(head -n 1 "$VM_SERIAL")

for round in 1 2; do
	old=$VM_PID
	lines_before=$(wc -l <"$VM_SERIAL")
	ip netns exec "$ns" ping -i 0.01 -c 300 -q 10.0.5.15 >"$VM_DIR/ping" 2>&1 &
	pinger=$!
	sleep 1
	report=$("$QU_BIN" --pid "$old" --json --quiet 2>"$VM_DIR/err")
	wait "$pinger"
	VM_PID=$(cat "$VM_DIR/qemu.pid")
	vm_track_pid "$VM_PID" 2>/dev/null
	sent=$(sed -n 's/^\([0-9]*\) packets transmitted, .*/\1/p' "$VM_DIR/ping")
	got=$(sed -n 's/^[0-9]* packets transmitted, \([0-9]*\) received.*/\1/p' "$VM_DIR/ping")
	pause=$(json_get "$report" pause_ms)
	tap_diag "round $round: $(json_get "$report" result), pause $pause ms, $((sent - got)) of $sent pings lost $(cat "$VM_DIR/err")"
	[ "$(json_get "$report" result)" = upgraded ] && [ "$VM_PID" != "$old" ]
	tap_ok $? "round $round: upgraded"
	# A 10 ms ping interval: a pause of P ms can swallow about P/10 + 1 of them.
	[ "$sent" = 300 ] && awk -v lost=$((sent - got)) -v p="$pause" 'BEGIN { exit !(lost <= p / 10 + 2) }'
	tap_ok $? "round $round: pings lost ($((sent - got)) of $sent) stay within the pause ($pause ms)"
	[ "$(vm_qmp "$VM_QMP" '{"execute":"query-status"}' | jq -r .return.status)" = running ]
	tap_ok $? "round $round: QMP answers at the same path, the guest runs"
	tap_is "$(cat "$VM_DIR/qemu.pid")" "$VM_PID" "round $round: the pidfile names the new PID"
	after=$(facts "$VM_PID")
	[ "$after" = "$before" ] || tap_diag "round $round: was $(tr '\n' '|' <<<"$before") now $(tr '\n' '|' <<<"$after")"
	[ "$after" = "$before" ]
	tap_ok $? "round $round: same user, cgroups, CPU affinity and network namespace"
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
	tap_ok $? "round $round: the guest makes progress, memory intact"
	[ "$(stat -c %i "$VM_SERIAL")" = "$serial_inode" ] && [ "$(head -n 1 "$VM_SERIAL")" = "$first_line" ] &&
		[ "$(wc -l <"$VM_SERIAL")" -gt "$lines_before" ]
	tap_ok $? "round $round: the serial log continues in the same file"
done
ip netns exec "$ns" ping -c 3 -W 5 10.0.5.15 >/dev/null
tap_ok $? "the guest still answers pings on its tap"
owner=$(stat -c %U "$VM_DIR/qemu.pid")
tap_is "$owner" nobody "the pidfile belongs to the VM's user"
tap_done
