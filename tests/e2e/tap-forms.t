#!/usr/bin/env bash
# Taps as management tools write them, carried across live upgrades in a network namespace.
# libvirt: its daemon opens the tap and passes it as a JSON -netdev with the descriptor as a
# string ({"type":"tap","fd":"3",...}; here tapopen stands in for libvirtd), and JSON -device.
# Proxmox: -netdev type=tap,id=net0,ifname=NAME,script=UP,downscript=DOWN; QEMU opens the tap
# by name and runs the up script (which brings the tap up, as Proxmox's adds it to a bridge).
# The host pings each guest every 10 ms through two upgrades; the up script runs once (at the
# first start, never again in a new QEMU) and the down script never (the old QEMU is retired,
# not shut down); the new QEMU's command line keeps each form. When the upgraded Proxmox-style
# QEMU (which holds the tap by fd=, for which QEMU runs no downscript=) exits, its down script
# runs once, with the tap's name (the watcher the first upgrade started, upgrade/tapwatch.c).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/net.sh"

tap_plan 25
ns=qu-tapf-$$
ip netns add "$ns" || { echo "Bail out! cannot create a network namespace"; exit 1; }
vm_defer "ip netns del $ns"
tapopen=$QU_BUILD/tests/helpers/tapopen
log=$(mktemp)
_vm_paths+=("$log" "$log.up" "$log.down")
printf '#!/bin/sh\necho "up $1" >>%s\nip link set "$1" up && ip addr add 10.0.5.1/24 dev "$1"\n' "$log" >"$log.up"
printf '#!/bin/sh\necho "down $1" >>%s\n' "$log" >"$log.down"
chmod +x "$log.up" "$log.down"

VM_WRAP="ip netns exec $ns $tapopen tapj0 3" VM_APPEND="net_ip=10.0.4.15/24" \
	vm_start libvirt -netdev '{"type":"tap","fd":"3","id":"hostnet0"}' \
	-device '{"driver":"virtio-net-pci","netdev":"hostnet0","id":"net0","mac":"52:54:00:00:00:11"}' || exit 1
dirj=$VM_DIR
VM_WRAP="ip netns exec $ns" VM_APPEND="net_ip=10.0.5.15/24" \
	vm_start proxmox -netdev "type=tap,id=net0,ifname=tapp0,script=$log.up,downscript=$log.down" \
	-device virtio-net-pci,mac=52:54:00:00:00:12,netdev=net0,id=net0 || exit 1
dirp=$VM_DIR
ip -n "$ns" link set tapj0 up && ip -n "$ns" addr add 10.0.4.1/24 dev tapj0
for d in "$dirj" "$dirp"; do VM_SERIAL=$d/serial.log VM_PID=$(cat "$d/qemu.pid") vm_wait_ready || exit 1; done
[ "$(cat "$log")" = "up tapp0" ]
tap_ok $? "the Proxmox VM's QEMU ran its up script once at its start"

# netdev_of DIR: the -netdev value of the QEMU DIR/qemu.pid names.
netdev_of() { tr '\0' '\n' <"/proc/$(cat "$1/qemu.pid")/cmdline" | sed -n '/^-netdev$/{n;p}'; }

for round in 1 2; do
	upgrade_pinging "$ns" tapj0 "libvirt JSON fd tap, round $round" "$dirj" 10.0.4.15
	nd=$(netdev_of "$dirj")
	[ "$(jq -c 'del(.fd)' <<<"$nd")" = '{"type":"tap","id":"hostnet0"}' ] && [ "$(jq -r '.fd | type' <<<"$nd")" = string ]
	tap_ok $? "libvirt, round $round: the new QEMU has the tap as JSON with a string fd ($nd)"
	upgrade_pinging "$ns" tapp0 "Proxmox type=tap ifname tap, round $round" "$dirp" 10.0.5.15
	nd=$(netdev_of "$dirp")
	[[ $nd =~ ^type=tap,id=net0,fd=[0-9]+$ ]]
	tap_ok $? "Proxmox, round $round: the new QEMU has type=tap,id=net0,fd=N ($nd)"
done
[ "$(cat "$log")" = "up tapp0" ]
tap_ok $? "no up script ran in a new QEMU and no down script when an old QEMU retired ($(tr '\n' ' ' <"$log"))"
for d in "$dirj" "$dirp"; do
	VM_SERIAL=$d/serial.log VM_PID=$(cat "$d/qemu.pid")
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
	tap_ok $? "guest in ${d##*/} is clean and running"
done
# The upgraded QEMU's exit: the tap goes with it, and the watcher runs the down script.
vm_stop "$(cat "$dirp/qemu.pid")"
end=$((SECONDS + 30))
until grep -qx "down tapp0" "$log" || [ $SECONDS -ge $end ]; do sleep 0.1; done
sleep 0.5 # a second run would follow at once
[ "$(cat "$log")" = "up tapp0
down tapp0" ]
tap_ok $? "the upgraded Proxmox-style QEMU's exit ran its down script once, with the tap's name ($(tr '\n' ' ' <"$log"))"
tap_done
