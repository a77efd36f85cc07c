#!/usr/bin/env bash
# The package post-install hook, end to end: VMs run QEMU 7.2 from an install prefix; the
# QEMU 10.0 packages from bookworm-backports replace that install the way dpkg does (each
# file written beside its target and renamed over it, files the new version lacks removed);
# the apt hook that `make install` put in place runs as apt runs it (sh -c). Every VM of the
# prefix is then on 10.0 with its guest clean; a VM on the system's QEMU is untouched.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 13
vm_qemu10
q10=$Q10
new_root=${q10%/usr/bin/qemu-system-x86_64}

T=$(mktemp -d)
_vm_paths+=("$T")
P=$T/prefix
mkdir -p "$P/usr/bin" "$P/usr/share" "$P/usr/lib/x86_64-linux-gnu"
cp -a /usr/bin/qemu-system-x86_64 "$P/usr/bin/"
cp -a /usr/share/qemu /usr/share/seabios "$P/usr/share/"
cp -a /usr/lib/x86_64-linux-gnu/qemu "$P/usr/lib/x86_64-linux-gnu/"
make -s -C "$QU_ROOT" install PREFIX="$T/usr" SYSCONFDIR="$T/etc" >/dev/null
hook=$(apt-config -c "$T/etc/apt/apt.conf.d/90qemu-upgrade" dump DPkg::Post-Invoke |
	sed -n 's/^DPkg::Post-Invoke:: "\(.*qemu-upgrade.*\)";$/\1/p' | sed 's/\\"/"/g')
[ -n "$hook" ]
tap_ok $? "make install puts an apt DPkg::Post-Invoke hook in place"

declare -A dir pid
for vm in a b; do
	QEMU=$P/usr/bin/qemu-system-x86_64 vm_start "hook-$vm" -name "hook-$vm" || exit 1
	dir[$vm]=$VM_DIR pid[$vm]=$VM_PID
done
vm_start hook-system -name hook-system || exit 1
dir[s]=$VM_DIR pid[s]=$VM_PID
for vm in a b s; do VM_SERIAL=${dir[$vm]}/serial.log VM_PID=${pid[$vm]} vm_wait_ready || exit 1; done

# Another test's --all (rpm-hook.t) must not run at the same moment: each would upgrade the
# other's replaced VMs.
exec 8>"$QU_BUILD/package-hooks.lock"
flock 8
# The package upgrade, as dpkg unpacks it.
(cd "$new_root" && find usr -type f -o -type l) | while read -r f; do
	mkdir -p "$(dirname "$P/$f")"
	cp -a "$new_root/$f" "$P/$f.dpkg-new" && mv -f "$P/$f.dpkg-new" "$P/$f"
done
(cd "$P" && find usr -type f -o -type l) | while read -r f; do
	[ -e "$new_root/$f" ] || [ -L "$new_root/$f" ] || rm -f "$P/$f"
done
readlink "/proc/${pid[a]}/exe" | grep -q '(deleted)$'
tap_ok $? "after the package upgrade the prefix VMs run a deleted binary"

plan=$("$QU_BIN" --all --dry-run --json)
jq -e --argjson a "${pid[a]}" --argjson b "${pid[b]}" \
	'[.vms[] | select(.result == "planned") | .old_pid] | (index($a) != null and index($b) != null)' <<<"$plan" >/dev/null
tap_ok $? "--all --dry-run plans both prefix VMs"
jq -e --argjson s "${pid[s]}" '[.left_alone[].pid] | index($s) != null' <<<"$plan" >/dev/null
tap_ok $? "--all --dry-run leaves the system-QEMU VM alone"

QEMU_UPGRADE_CONF=$T/etc/qemu-upgrade.conf sh -c "$hook"
tap_is "$?" 0 "the hook exits 0, as a package manager needs"

for vm in a b; do
	VM_DIR=${dir[$vm]} VM_SERIAL=${dir[$vm]}/serial.log VM_QMP=${dir[$vm]}/qmp.sock
	VM_PID=$(cat "$VM_DIR/qemu.pid")
	vm_track_pid "$VM_PID"
	[ "$VM_PID" != "${pid[$vm]}" ] && [ "$(readlink "/proc/$VM_PID/exe")" = "$P/usr/bin/qemu-system-x86_64" ]
	tap_ok $? "VM $vm: a new QEMU runs from the prefix's new binary"
	vm_qmp "$VM_QMP" '{"execute":"query-version"}' | grep -q '"major": 10'
	tap_ok $? "VM $vm: QMP at the same path answers as QEMU 10"
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
	tap_ok $? "VM $vm: the guest makes progress with no corruption"
done
VM_PID=${pid[s]} VM_QMP=${dir[s]}/qmp.sock
[ -e "/proc/$VM_PID" ] && [ "$(vm_runstate)" = running ]
tap_ok $? "the VM on the system's QEMU is untouched and running"
out=$("$QU_BIN" --all --json)
jq -e '.result == "nothing"' <<<"$out" >/dev/null
tap_ok $? "a second --all finds nothing to do"
flock -u 8
tap_done
