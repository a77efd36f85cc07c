#!/usr/bin/env bash
# vhost-net through upgrades: a VM whose tap uses vhost-net (vhost=on), run as nobody with the
# tap opened by its parent, as libvirt runs it. The tool opens /dev/vhost-net for the new
# QEMU and passes it as vhostfd= (an unprivileged QEMU could not open it itself). The guest
# answers pings through two upgrades and the new QEMU holds a vhost-net descriptor.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

if [ ! -c /dev/vhost-net ]; then
	echo "1..0 # SKIP no /dev/vhost-net on this host (the vhost_net module is not loaded or not available)"
	exit 0
fi
tap_plan 7
ns=qu-vhost-$$
ip netns add "$ns" || { echo "Bail out! cannot create a network namespace"; exit 1; }
vm_defer "ip netns del $ns"
wrap=$(mktemp)
_vm_paths+=("$wrap")
# The parent (root) opens /dev/vhost-net as fd 4 and the tap as fd 3, then QEMU runs as
# nobody with both, as libvirt does.
printf '#!/bin/sh\nexec 4<>/dev/vhost-net\nexec ip netns exec %s %s tap0 3 %s\n' "$ns" "$QU_BUILD/tests/helpers/tapopen" \
	'setpriv --reuid=65534 --regid=65534 --clear-groups "$@"' >"$wrap"
chmod +x "$wrap"
VM_OWNER=nobody VM_WRAP="$wrap" VM_APPEND="net_ip=10.0.6.15/24" \
	vm_start vhost -netdev tap,id=n0,fd=3,vhostfd=4 -device virtio-net-pci,netdev=n0,mac=52:54:00:00:06:01 || exit 1
ip -n "$ns" link set tap0 up && ip -n "$ns" addr add 10.0.6.1/24 dev tap0
vm_wait_ready || exit 1
ip netns exec "$ns" ping -c 3 -W 5 10.0.6.15 >/dev/null
tap_ok $? "the guest answers pings over its vhost-net tap"
for round in 1 2; do
	old=$VM_PID
	vm_upgrade
	report=$REPORT
	tap_diag "round $round: $(json_get "$report" result) $(json_get "$report" error) $(cat "$VM_DIR/err")"
	[ "$(json_get "$report" result)" = upgraded ] && [ "$VM_PID" != "$old" ]
	tap_ok $? "round $round: upgraded"
	ls -l "/proc/$VM_PID/fd" | grep -q vhost-net && tr '\0' ' ' <"/proc/$VM_PID/cmdline" | grep -q 'vhostfd='
	tap_ok $? "round $round: the new QEMU holds /dev/vhost-net, passed as vhostfd="
	ip netns exec "$ns" ping -c 3 -W 5 10.0.6.15 >/dev/null
	tap_ok $? "round $round: the guest answers pings"
done
tap_done
