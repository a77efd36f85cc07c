#!/usr/bin/env bash
# libvirt mode against a real libvirt 9.0 daemon (docs/libvirt.md): a TCG domain with shared
# memfd RAM, a tap, a file serial log and an iothread, upgraded 7.2 -> 10.0 -> 10.0 with
# --libvirt-restart; after each upgrade libvirt still manages it (dominfo, domstats,
# suspend/resume, its monitor, a disk hotplug and unplug, a loop device's hotplug and unplug with
# the host's /dev node untouched, vCPU cgroups), and then destroy,
# start, another upgrade and save/restore. Without --libvirt-restart, while libvirtd runs,
# the VM is refused (exit 3) and nothing is touched; a dry run then plans without the monitor
# and names every blocker (a paused domain; a second domain with private RAM). A failure rolls back and the daemon comes
# back; a tool killed before the commit leaves the rollback and the daemon's restart to its
# guardian; a tool killed after the commit together with its guardian leaves both the rewrite
# and the daemon to --recover. --all, after a "package upgrade" of the domain's emulator, stops the
# daemon once for the batch.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/libvirt.sh"

lv_require
tap_plan 80
vm_qemu10
vm_guest_build || exit 1

LV_DOMAIN=qu-lvtest-$$
LV_TAP=qulv$$
dir=$(mktemp -d /tmp/qu-libvirt.XXXXXX) && chmod 755 "$dir" || exit 1
cp "$VM_KERNEL" "$VM_INITRD" "$dir/" || exit 1
lv_start_daemons
rc=$?
vm_defer "rm -rf '$dir'" # after lv_cleanup: libvirt gives the kernel back its owner on destroy
[ "$rc" = 0 ] || { echo "Bail out! cannot start libvirt's daemons"; exit 1; }
ip tuntap add dev "$LV_TAP" mode tap vnet_hdr && ip link set "$LV_TAP" up || { echo "Bail out! cannot make a tap"; exit 1; }
# A loop device for the block-device hotplug (detached at exit; autoclear if still in use).
truncate -s 8M "$dir/loop.img" && LV_LOOP=$(losetup -f --show "$dir/loop.img") || { echo "Bail out! cannot make a loop device"; exit 1; }
vm_defer "losetup -d '$LV_LOOP' 2>/dev/null"
lv_domain_xml "$LV_DOMAIN" "$dir" "$LV_TAP" >"$dir/domain.xml"
export VM_SERIAL=$dir/serial.log VM_DIR=$dir
# Journals of its own: --recover below must not meet other tests' upgrades.
export QEMU_UPGRADE_STATE_DIR=$dir/state
# Nothing left in it but the lock file: no journal, no libvirt record or restart.
lv_state_clean() { ! ls -A "$QEMU_UPGRADE_STATE_DIR" 2>/dev/null | grep -qv '^libvirt\.lock$'; }

# lv_boot: start the domain and wait for the guest's checker.
lv_boot() {
	lv_virsh start "$LV_DOMAIN" >/dev/null || return
	VM_PID=$(lv_status_pid)
	[ -n "$VM_PID" ] && lv_track_qemu "$VM_PID" && vm_wait_ready
}
lv_virsh define "$dir/domain.xml" >/dev/null && lv_boot || { echo "Bail out! the domain does not start"; exit 1; }
# What an upgrade must keep: libvirt writes its PID file in QEMU's process before the exec and
# keeps it locked there (virPidFileAcquirePath), the lock QEMU's own -pidfile would take too.
lv_pidfile_locked_by "$VM_PID"
tap_ok $? "before any upgrade: libvirt's PID file names QEMU $VM_PID, which holds its lock"

# --- refused while libvirtd runs -------------------------------------------------------
daemon=$(lv_libvirtd_pid)
err=$("$QU_BIN" --pid "$VM_PID" --new-binary "$Q10" --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "$err"
tap_is "$rc" 3 "without --libvirt-restart, while libvirtd runs: refused (exit 3)"
grep -q "libvirtd (PID $daemon)" <<<"$err" && grep -q -- --libvirt-restart <<<"$err" && grep -q "$LV_DOMAIN" <<<"$err"
tap_ok $? "the refusal names the domain, the daemon and --libvirt-restart"
[ "$(lv_libvirtd_pid)" = "$daemon" ] && [ "$(lv_status_pid)" = "$VM_PID" ] && ! proc_gone "$VM_PID" &&
	[ "$(lv_virsh domstate "$LV_DOMAIN")" = running ]
tap_ok $? "nothing touched: the same QEMU runs, the same libvirtd, the status file unchanged"

report=$("$QU_BIN" --pid "$VM_PID" --new-binary "$Q10" --dry-run --libvirt-restart --json --quiet 2>/dev/null)
tap_diag "$report"
[ "$(json_get "$report" result)" = planned ] && [ "$(json_get "$report" libvirt.daemon_pid)" = "$daemon" ] &&
	grep -q "would stop it" <<<"$(json_get "$report" libvirt.action)" && [ "$(lv_libvirtd_pid)" = "$daemon" ]
tap_ok $? "a dry run says what it would do to libvirt, and does nothing"
[ "$(json_get "$report" strategy)" = shared-ram-handover ] &&
	[ "$(json_get "$report" machine)" = "$(sed -n "s/.*machine='\([^']*\)'.*/\1/p" "/run/libvirt/qemu/$LV_DOMAIN.xml" | head -n1)" ] &&
	grep -q "libvirtd holds the monitor" <<<"$(json_get "$report" unchecked)" && [ "$(jq '.new_argv | length' <<<"$report")" -gt 10 ]
tap_ok $? "and plans without the monitor libvirtd holds (shared RAM, the machine type from the command line), saying what it could not check"

# While libvirtd holds the monitor, a dry run still lists every blocker: libvirt's refusal and
# what the status file, the command line and /proc show. Here the domain is paused (its
# status file says so: QMP is not needed to know).
lv_virsh suspend "$LV_DOMAIN" >/dev/null && [ "$(lv_virsh domstate "$LV_DOMAIN")" = paused ]
tap_ok $? "the domain suspended through libvirt"
report=$("$QU_BIN" --pid "$VM_PID" --new-binary "$Q10" --dry-run --json --quiet 2>"$dir/err")
rc=$?
tap_diag "paused, daemon running: rc $rc $(jq -c '{result,refusals,unchecked}' <<<"$report") $(cat "$dir/err")"
[ "$rc" = 3 ] && [ "$(json_get "$report" result)" = refused ] && [ "$(jq '.refusals | length' <<<"$report")" = 2 ] &&
	jq -r '.refusals[]' <<<"$report" | grep -q -- "--libvirt-restart" &&
	jq -r '.refusals[]' <<<"$report" | grep -q "not running (run state 'paused')"
tap_ok $? "a dry run names both blockers: libvirtd holding the monitor (with --libvirt-restart) and the paused domain"
text=$("$QU_BIN" inspect --pid "$VM_PID" --new-binary "$Q10" 2>&1)
tap_diag "$text"
grep -q "2 blockers" <<<"$text" && grep -q "^not checked: .*libvirtd holds the monitor" <<<"$text" &&
	[ "$(lv_libvirtd_pid)" = "$daemon" ] && [ "$(lv_status_pid)" = "$VM_PID" ] &&
	lv_virsh resume "$LV_DOMAIN" >/dev/null && [ "$(lv_virsh domstate "$LV_DOMAIN")" = running ]
tap_ok $? "inspect says the same in words, with what it could not check; nothing touched (libvirt resumes the domain)"

# A second domain whose RAM is private (no <memoryBacking>: memory-backend-ram, share=off),
# booting nothing: refused for libvirt's daemon and for its RAM at once, each with what to do;
# with both resolved (--libvirt-restart --allow-copy) the dry run plans the copy.
lv2=qu-lvplain-$$
cat >"$dir/plain.xml" <<EOF
<domain type='qemu'>
  <name>$lv2</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <features><acpi/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
pid2=
lv_virsh create "$dir/plain.xml" >/dev/null &&
	pid2=$(sed -n "s/^<domstatus [^>]*pid='\([0-9]*\)'.*/\1/p" "/run/libvirt/qemu/$lv2.xml") && [ -n "$pid2" ] &&
	lv_track_qemu "$pid2"
tap_ok $? "a second domain with private RAM runs (PID ${pid2:-?})"
report=$("$QU_BIN" --pid "${pid2:-0}" --new-binary "$Q10" --dry-run --json --quiet 2>"$dir/err")
rc=$?
tap_diag "private RAM, daemon running: rc $rc $(jq -c '{result,refusals,unchecked}' <<<"$report") $(cat "$dir/err")"
[ "$rc" = 3 ] && [ "$(jq '.refusals | length' <<<"$report")" = 2 ] &&
	jq -r '.refusals[]' <<<"$report" | grep -q -- "--libvirt-restart" &&
	jq -r '.refusals[]' <<<"$report" | grep -q "cannot be handed over.*--allow-copy"
tap_ok $? "its dry run names both blockers: libvirtd holding the monitor and its private RAM (with --allow-copy)"
report=$("$QU_BIN" --pid "${pid2:-0}" --new-binary "$Q10" --dry-run --libvirt-restart --allow-copy --json --quiet 2>"$dir/err")
rc=$?
tap_diag "both resolved: rc $rc $(jq -c '{result,strategy,refusals,libvirt}' <<<"$report") $(cat "$dir/err")"
[ "$rc" = 0 ] && [ "$(json_get "$report" result)" = planned ] && grep -q copy <<<"$(json_get "$report" strategy)" &&
	[ "$(json_get "$report" ram_to_copy_bytes)" = $((64 << 20)) ]
tap_ok $? "with --libvirt-restart --allow-copy its dry run plans a copy of its 64 MiB"
[ "$(lv_libvirtd_pid)" = "$daemon" ] && lv_virsh destroy "$lv2" >/dev/null && proc_gone_soon "${pid2:-0}"
tap_ok $? "nothing touched: the same libvirtd, which destroys the second domain"

# Another libvirt-mode upgrade holds the lock: this one waits, then gives up untouched.
mkdir -p "$QEMU_UPGRADE_STATE_DIR"
flock -o "$QEMU_UPGRADE_STATE_DIR/libvirt.lock" sleep 60 &
holder=$!
vm_track_pid "$holder"
until sleeper=$(pgrep -P "$holder" -x sleep); do sleep 0.05; done
vm_track_pid "$sleeper"
err=$("$QU_BIN" --pid "$VM_PID" --new-binary "$Q10" --libvirt-restart --timeout 2 --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "$err"
[ "$rc" = 2 ] && grep -q "another qemu-upgrade is upgrading a libvirt domain" <<<"$err"
tap_ok $? "while another libvirt-mode upgrade holds the lock: waits, then gives up (exit 2)"
[ "$(lv_libvirtd_pid)" = "$daemon" ] && [ "$(lv_status_pid)" = "$VM_PID" ] && ! proc_gone "$VM_PID"
tap_ok $? "and touches nothing: the same libvirtd, the same QEMU"
vm_stop "$holder" && vm_stop "$sleeper"

# A VM of someone else's under the domain's name (not in libvirt's cgroup, not the PID in
# its status file) is an ordinary VM: no libvirt mode, no refusal.
lv_pid=$VM_PID lv_serial=$VM_SERIAL lv_dir=$VM_DIR
vm_start same-name -name "guest=$LV_DOMAIN,debug-threads=on" || exit 1
report=$("$QU_BIN" --pid "$VM_PID" --dry-run --json --quiet 2>/dev/null)
tap_diag "$(jq -c '{result,libvirt}' <<<"$report")"
[ "$(json_get "$report" result)" = planned ] && [ "$(json_get "$report" libvirt)" = null ]
tap_ok $? "a plain VM named like the libvirt domain is not taken for it"
vm_stop
VM_PID=$lv_pid VM_SERIAL=$lv_serial VM_DIR=$lv_dir

# Refused after the daemon was stopped (a new binary that does not exist): started again.
err=$("$QU_BIN" --pid "$VM_PID" --new-binary "$dir/no-such-qemu" --libvirt-restart --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "$err"
[ "$rc" != 0 ] && [ "$(lv_status_pid)" = "$VM_PID" ] && ! proc_gone "$VM_PID"
tap_ok $? "an upgrade that stops after the daemon's stop (no such binary) touches nothing"
[ -n "$(lv_libvirtd_pid)" ] && [ "$(lv_libvirtd_pid)" != "$daemon" ] && lv_wait_state running &&
	lv_state_clean
tap_ok $? "and libvirtd was started again, its journal dropped"

# --- checks after an upgrade -----------------------------------------------------------
# lv_upgrade LABEL: with --libvirt-restart onto 10.0; sets VM_PID to the new QEMU.
lv_upgrade() {
	local old=$VM_PID daemon_before mnt_before
	daemon_before=$(lv_libvirtd_pid)
	mnt_before=$(readlink "/proc/$VM_PID/ns/mnt")
	report=$("$QU_BIN" --pid "$VM_PID" --new-binary "$Q10" --libvirt-restart --json --quiet 2>"$dir/err")
	local rc=$? new
	new=$(json_get "$report" new_pid)
	[[ $new =~ ^[0-9]+$ ]] && lv_track_qemu "$new" && VM_PID=$new
	tap_diag "$1: $(jq -c '{result,old_pid,new_pid,pause_ms,total_ms,libvirt}' <<<"$report") $(cat "$dir/err")"
	[ "$rc" = 0 ] && [ "$(json_get "$report" result)" = upgraded ] && [ "$VM_PID" != "$old" ] &&
		[ "$(readlink "/proc/$VM_PID/exe")" = "$Q10" ] && proc_gone_soon "$old"
	tap_ok $? "$1: upgraded with --libvirt-restart, onto QEMU 10.0, the old QEMU gone"
	[ "$(json_get "$report" libvirt.stopped)" = true ] && [ "$(json_get "$report" libvirt.pid_rewritten)" = true ] &&
		[ "$(json_get "$report" libvirt.restarted)" = true ] && [ -n "$(lv_libvirtd_pid)" ] &&
		[ "$(lv_libvirtd_pid)" != "$daemon_before" ]
	tap_ok $? "$1: libvirtd was stopped and runs again (the report's libvirt object says so)"
	# libvirt's hotplug makes /dev nodes in the mount namespace of the QEMU it knows.
	tap_is "$(readlink "/proc/$VM_PID/ns/mnt")" "$mnt_before" "$1: the new QEMU is in the old one's mount namespace ($mnt_before; this test's is $(readlink /proc/self/ns/mnt))"
}

# lv_checks LABEL: libvirt manages the upgraded VM as before.
lv_checks() {
	lv_wait_state running
	tap_ok $? "$1: virsh domstate: running (libvirt reconnected)"
	[ "$(lv_status_pid)" = "$VM_PID" ] && [ "$(cat "/run/libvirt/qemu/$LV_DOMAIN.pid")" = "$VM_PID" ]
	tap_ok $? "$1: libvirt's status file and PID file name the new QEMU ($VM_PID)"
	lv_pidfile_locked_by "$VM_PID"
	tap_ok $? "$1: the new QEMU holds the PID file's lock (/proc/locks), as the old one did"
	local info
	info=$(lv_virsh dominfo "$LV_DOMAIN")
	grep -q '^State: *running' <<<"$info" && grep -q "^Id: *$(lv_virsh domid "$LV_DOMAIN")" <<<"$info"
	tap_ok $? "$1: virsh dominfo"
	lv_virsh domstats "$LV_DOMAIN" --state --vcpu | grep -q 'state.state=1' &&
		lv_virsh domstats "$LV_DOMAIN" --vcpu | grep -q 'vcpu.0.state=1'
	tap_ok $? "$1: virsh domstats (state, vCPUs)"
	lv_virsh qemu-monitor-command "$LV_DOMAIN" '{"execute":"query-status"}' | grep -q '"status":"running"'
	tap_ok $? "$1: virsh qemu-monitor-command query-status: running"
	lv_virsh suspend "$LV_DOMAIN" >/dev/null && [ "$(lv_virsh domstate "$LV_DOMAIN")" = paused ] &&
		lv_virsh qemu-monitor-command "$LV_DOMAIN" '{"execute":"query-status"}' | grep -q '"status":"paused"' &&
		lv_virsh resume "$LV_DOMAIN" >/dev/null && [ "$(lv_virsh domstate "$LV_DOMAIN")" = running ]
	tap_ok $? "$1: virsh suspend and resume"
	# A disk on the virtio-scsi bus: plugged and unplugged with no guest's say, a file image
	# (no node in /dev); libvirt's /dev nodes belong in the VM's mount namespace.
	local img=$dir/hotplug.img devs
	truncate -s 1M "$img"
	devs=$(ls -l /dev)
	lv_virsh attach-disk "$LV_DOMAIN" "$img" sda --targetbus scsi --live >/dev/null &&
		lv_virsh domblklist "$LV_DOMAIN" | grep -q "sda .*hotplug.img" &&
		lv_virsh qemu-monitor-command "$LV_DOMAIN" '{"execute":"query-block"}' | grep -q hotplug.img &&
		lv_virsh detach-disk "$LV_DOMAIN" sda --live >/dev/null &&
		! lv_virsh domblklist "$LV_DOMAIN" | grep -q sda
	tap_ok $? "$1: a disk hotplugged and unplugged"
	[ "$(ls -l /dev)" = "$devs" ]
	tap_ok $? "$1: nothing changed in the host's /dev"
	# A block device that has a /dev node (a loop device, --sourcetype block): libvirt makes
	# its node in the VM's mount namespace (a /dev of its own) and labels it there. The host's
	# node stays as it is (type, mode, owner, device number, inode) while the disk is attached
	# and after, and nothing else in the host's /dev changes: the new QEMU lives in the old
	# one's mount namespace. (The guest does not see it: its initramfs has no virtio-scsi
	# driver.)
	local host_before host_attached ns_node
	host_before=$(stat -c '%f %u:%g %t:%T %i' "$LV_LOOP")
	devs=$(ls -l /dev)
	lv_virsh attach-disk "$LV_DOMAIN" "$LV_LOOP" sdb --targetbus scsi --sourcetype block --live >/dev/null &&
		lv_virsh domblklist "$LV_DOMAIN" | grep -q "sdb .*$LV_LOOP" &&
		lv_virsh qemu-monitor-command "$LV_DOMAIN" '{"execute":"query-block"}' | grep -q "$LV_LOOP"
	tap_ok $? "$1: a loop device ($LV_LOOP) hotplugged"
	host_attached=$(stat -c '%f %u:%g %t:%T %i' "$LV_LOOP")
	ns_node=$(nsenter -t "$VM_PID" -m stat -c '%f %U:%G %t:%T %i' "$LV_LOOP" 2>&1)
	lv_virsh detach-disk "$LV_DOMAIN" sdb --live >/dev/null && ! lv_virsh domblklist "$LV_DOMAIN" | grep -q sdb
	tap_ok $? "$1: and unplugged"
	tap_diag "$1: $LV_LOOP on the host: '$host_before', while attached '$host_attached', after '$(stat -c '%f %u:%g %t:%T %i' "$LV_LOOP")'; in the VM's mount namespace while attached: '$ns_node'"
	[ "$host_attached" = "$host_before" ] && [ "$(stat -c '%f %u:%g %t:%T %i' "$LV_LOOP")" = "$host_before" ] &&
		[ "$(ls -l /dev)" = "$devs" ] && [[ $ns_node =~ ^6[0-9a-f]{3}\  ]] &&
		[ "$(cut -d' ' -f3 <<<"$ns_node")" = "$(cut -d' ' -f3 <<<"$host_before")" ] &&
		[ "$(cut -d' ' -f4 <<<"$ns_node")" != "$(cut -d' ' -f4 <<<"$host_before")" ]
	tap_ok $? "$1: the host's $LV_LOOP unchanged while attached and after, nothing else in its /dev changed; libvirt's node for it was the VM's own (another inode, same device)"
	# Each vCPU thread in libvirt's vcpuN cgroup, the iothread in iothread1 (v2 and v1 cpu).
	local t name bad=0 n=0
	for t in /proc/"$VM_PID"/task/*; do
		name=$(cat "$t/comm")
		local want=
		case $name in "CPU "*/TCG) want=vcpu${name//[^0-9]/} ;; "IO iothread1") want=iothread1 ;; *) continue ;; esac
		n=$((n + 1))
		grep -E '^(0::|[0-9]+:cpu[,:])' "$t/cgroup" | grep -qv "/$want\$" && { bad=1; tap_diag "$name: $(cat "$t/cgroup")"; }
	done
	[ "$bad" = 0 ] && [ "$n" = 2 ]
	tap_ok $? "$1: the vCPU and iothread threads in libvirt's vcpu0 and iothread1 cgroups"
	vm_memcheck_progress 60
	tap_ok $? "$1: the guest makes progress"
	tap_is "$(vm_memcheck_errors)" 0 "$1: the guest's memory checker is clean"
}

lv_upgrade "7.2 -> 10.0"
lv_checks "7.2 -> 10.0"
lv_upgrade "10.0 -> 10.0"
lv_checks "10.0 -> 10.0"

# --- destroy, start, upgrade, save and restore -----------------------------------------
upgraded=$VM_PID
lv_virsh destroy "$LV_DOMAIN" >/dev/null && proc_gone "$upgraded" && [ ! -e "/run/libvirt/qemu/$LV_DOMAIN.xml" ]
tap_ok $? "virsh destroy ends the upgraded QEMU and libvirt's record of it"
: >"$VM_SERIAL"
lv_boot
tap_ok $? "virsh start: the domain boots again"
lv_upgrade "after start"
lv_virsh save "$LV_DOMAIN" "$dir/saved.img" >/dev/null && proc_gone "$VM_PID" &&
	[ "$(lv_virsh domstate "$LV_DOMAIN")" = "shut off" ]
tap_ok $? "virsh save of the upgraded VM"
# The domain's definition names 7.2: libvirt restores the 10.0 QEMU's state into it.
lv_virsh restore "$dir/saved.img" >/dev/null && lv_wait_state running
tap_ok $? "virsh restore"
VM_PID=$(lv_status_pid)
[ -n "$VM_PID" ] && lv_track_qemu "$VM_PID"
vm_memcheck_progress 60
tap_ok $? "after restore: the guest makes progress"
tap_is "$(vm_memcheck_errors)" 0 "after restore: the guest's memory checker is clean"

# --- faults ------------------------------------------------------------------------------
# A failure before the commit (fault point 2: the new QEMU started): rolled back, nothing
# rewritten, the daemon started again.
old=$VM_PID daemon=$(lv_libvirtd_pid)
QEMU_UPGRADE_FAULT=2 "$QU_BIN" --pid "$VM_PID" --new-binary "$Q10" --libvirt-restart --quiet >/dev/null 2>"$dir/err"
rc=$?
tap_diag "fault 2: $(cat "$dir/err")"
tap_is "$rc" 1 "a failure before the commit: rolled back (exit 1)"
[ "$(lv_status_pid)" = "$old" ] && ! proc_gone "$old" && lv_state_clean && lv_pidfile_locked_by "$old" && lv_no_spare
tap_ok $? "the old QEMU runs the guest, the status and PID files still name it (its lock held), no journal or spare file left"
[ -n "$(lv_libvirtd_pid)" ] && [ "$(lv_libvirtd_pid)" != "$daemon" ] && lv_wait_state running
tap_ok $? "libvirtd was started again after the rollback, and manages the domain"

# The tool killed before the commit (point 5: the old QEMU sent everything and is paused): its
# guardian resumes the old QEMU through libvirt's monitor (as root, its other end checked),
# rewrites nothing, and starts the daemon the tool stopped.
daemon=$(lv_libvirtd_pid)
QEMU_UPGRADE_FAULT=5:kill "$QU_BIN" --pid "$VM_PID" --new-binary "$Q10" --libvirt-restart >/dev/null 2>"$dir/err"
new=$(started_qemu "$dir/err")
[ -n "$new" ] && lv_track_qemu "$new"
end=$((SECONDS + 60))
until { [ ! -e "$QEMU_UPGRADE_STATE_DIR/$old.journal" ] && [ -n "$(lv_libvirtd_pid)" ]; } || [ $SECONDS -ge $end ]; do
	sleep 0.1
done
tap_diag "killed at 5: $(tr '\n' ' ' <"$dir/err")"
why=
[ -n "$new" ] || why+=" no new QEMU's PID in the tool's log;"
[ -n "$new" ] && ! proc_gone "$new" && why+=" the new QEMU $new still runs;"
proc_gone "$old" && why+=" the old QEMU is gone;"
[ "$(lv_status_pid)" = "$old" ] || why+=" the status file names $(lv_status_pid);"
[ -e "$QEMU_UPGRADE_STATE_DIR/$old.journal" ] && why+=" the journal is left;"
[ -e "$QEMU_UPGRADE_STATE_DIR/$old.libvirt" ] && why+=" libvirt's journal is left;"
lv_pidfile_locked_by "$old" || why+=" the PID file is not locked by the old QEMU;"
lv_no_spare || why+=" spare files are left;"
[ -z "$why" ] && { vm_memcheck_progress 60 || why+=" the guest made no progress ($(vm_memcheck_status));"; }
[ -z "$why" ]
tap_ok $? "killed before the commit: the guardian resumed the old QEMU through libvirt's monitor, nothing rewritten (the PID file still the old QEMU's, locked)${why:+; saw:$why}"
[ -n "$(lv_libvirtd_pid)" ] && [ "$(lv_libvirtd_pid)" != "$daemon" ] &&
	[ ! -e "$QEMU_UPGRADE_STATE_DIR/libvirtd.restart" ] && lv_wait_state running
tap_ok $? "the guardian started libvirtd again, which manages the domain on the old QEMU"

# The tool and its guardian both killed right after the commit (point 7): nothing settles the
# upgrade and libvirtd stays stopped, its restart journaled, until --recover finishes the
# upgrade (the status file then names the new QEMU) and starts the daemon.
QEMU_UPGRADE_FAULT=7:wait "$QU_BIN" --pid "$VM_PID" --new-binary "$Q10" --libvirt-restart >/dev/null 2>"$dir/err" &
tool=$!
for _ in $(seq 600); do grep -q "fault point 7: waiting" "$dir/err" 2>/dev/null && break; sleep 0.1; done
new=$(started_qemu "$dir/err")
[ -n "$new" ] && lv_track_qemu "$new"
# The guardian: the tool's child running the tool's own binary (the new QEMU is a child too).
guardian=
for c in $(ps -o pid= --ppid "$tool"); do
	[ "$(readlink "/proc/$c/exe")" = "$(readlink "/proc/$tool/exe")" ] && guardian=$c
done
tap_diag "point 7: tool $tool, guardian ${guardian:-?}, new QEMU ${new:-?}"
[ -n "$guardian" ] && kill -KILL "$guardian"
kill -KILL "$tool"
wait "$tool" 2>/dev/null
# Gone before --recover looks: a guardian still exiting holds the VM's lock (a loaded machine).
[ -n "$guardian" ] && proc_gone_soon "$guardian" 30
[ -n "$guardian" ] && [ -n "$new" ] && [ -z "$(lv_libvirtd_pid)" ] && [ -e "$QEMU_UPGRADE_STATE_DIR/libvirtd.restart" ] &&
	[ -e "$QEMU_UPGRADE_STATE_DIR/$old.journal" ]
tap_ok $? "tool and guardian killed after the commit: libvirtd stays stopped, the upgrade and the restart journaled"
out=$("$QU_BIN" --recover 2>&1)
tap_diag "$(tr "\n" " " <<<"$out")"
proc_gone "$old" && [ "$(lv_status_pid)" = "$new" ] && [ "$(readlink "/proc/$new/exe")" = "$Q10" ] &&
	grep -q "libvirtd: started again" <<<"$out" && [ -n "$(lv_libvirtd_pid)" ] &&
	[ ! -e "$QEMU_UPGRADE_STATE_DIR/libvirtd.restart" ]
tap_ok $? "--recover finishes the upgrade (the status file names the new QEMU $new) and starts libvirtd again"
lv_pidfile_locked_by "$new"
tap_ok $? "after --recover: the PID file names the new QEMU, which holds its lock"
VM_PID=$new
lv_wait_state running && lv_virsh qemu-monitor-command "$LV_DOMAIN" '{"execute":"query-status"}' | grep -q '"status":"running"'
tap_ok $? "libvirt manages the domain on the new QEMU"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest makes progress, its memory checker clean"

# --- --all ---------------------------------------------------------------------------------
# The domain's emulator at a path of its own (root's, in root's directories: --all runs only
# such binaries), 7.2 first; then 10.0 copied over it, as a package upgrade does. QEMU looks
# for its firmware beside its binary (../share, ../lib): links to the system's.
alt=/usr/local/lib/qu-lvtest-$$
vm_defer "rm -rf '$alt'"
mkdir -p "$alt/bin" && ln -s /usr/share "$alt/share" && ln -s /usr/lib "$alt/lib" &&
	cp /usr/bin/qemu-system-x86_64 "$alt/bin/" || { echo "Bail out! cannot make $alt"; exit 1; }
QEMU=$alt/bin/qemu-system-x86_64 lv_domain_xml "$LV_DOMAIN" "$dir" "$LV_TAP" >"$dir/domain.xml"
lv_virsh destroy "$LV_DOMAIN" >/dev/null && lv_virsh undefine "$LV_DOMAIN" >/dev/null &&
	lv_virsh define "$dir/domain.xml" >/dev/null && : >"$VM_SERIAL" && lv_boot
tap_ok $? "the domain boots on the emulator at $alt/bin"
old=$VM_PID
# Other tests' --all (package-hook.t, rpm-hook.t) take every replaced VM: not while this one is.
exec 8>"$QU_BUILD/package-hooks.lock"
flock 8
cp "$Q10" "$alt/bin/.new" && mv -f "$alt/bin/.new" "$alt/bin/qemu-system-x86_64"
# While libvirtd holds the monitor, the dry run cannot ask the old binary its version any more
# (the file at its path is another one now): it says so rather than guess.
report=$("$QU_BIN" --pid "$VM_PID" --dry-run --libvirt-restart --json --quiet 2>"$dir/err")
rc=$?
tap_diag "dry run after the binary's replacement: rc $rc $(jq -c '{result,strategy,old_version,unchecked}' <<<"$report") $(cat "$dir/err")"
[ "$rc" = 0 ] && [ "$(json_get "$report" result)" = planned ] && [ "$(json_get "$report" old_version)" = unknown ] &&
	grep -q "the old QEMU's version (its binary on disk is no longer the one it runs)" <<<"$(json_get "$report" unchecked)"
tap_ok $? "a dry run while libvirtd runs, after the emulator was replaced on disk: planned, saying the old version could not be checked"
report=$("$QU_BIN" --all --binary "$alt/bin/qemu-system-x86_64" --libvirt-restart --json --quiet 2>"$dir/err")
rc=$?
tap_diag "--all: $report $(cat "$dir/err")"
new=$(jq -r '.vms[0].new_pid' <<<"$report")
[[ $new =~ ^[0-9]+$ ]] && lv_track_qemu "$new" && VM_PID=$new
exec 8>&- # the domain runs the binary on disk again
[ "$rc" = 0 ] && [ "$(json_get "$report" result)" = upgraded ] && [ "$(jq -r '.vms | length' <<<"$report")" = 1 ] &&
	proc_gone "$old" && [ "$(lv_status_pid)" = "$new" ]
tap_ok $? "--all --libvirt-restart upgrades the domain whose binary was replaced; the status file names it"
lv_pidfile_locked_by "$VM_PID"
tap_ok $? "after --all: the PID file names the new QEMU, which holds its lock"
[ "$(json_get "$report" libvirt.stopped)" = true ] && [ "$(json_get "$report" libvirt.restarted)" = true ] &&
	[ "$(jq -r '.vms[0].libvirt.stopped' <<<"$report")" = false ] && [ -n "$(lv_libvirtd_pid)" ]
tap_ok $? "libvirtd stopped once by the batch (the VM's upgrade found it stopped), and started again"
lv_wait_state running && lv_virsh qemu-monitor-command "$LV_DOMAIN" '{"execute":"query-status"}' | grep -q '"status":"running"'
tap_ok $? "libvirt manages the domain after --all"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "after --all: the guest makes progress, its memory checker clean"
tap_done
