#!/usr/bin/env bash
# A VM as Proxmox VE's qemu-server starts it, upgraded 7.2 -> 10.0 -> 10.0 with a stand-in
# qmeventd watching (tests/helpers/qmeventd.py: what qmeventd and `qm cleanup` do, from
# qemu-server's sources; docs/proxmox.md). QEMU runs as root from a /usr/bin/kvm-like link
# with -name, -no-shutdown, the qmp socket and the qmeventd event socket as qemu-server writes
# them, -pidfile DIR/VMID.pid, -daemonize, the VNC console socket, -cpu, guest RAM in a
# mem-path directory (hugetlbfs when the kernel gives huge pages) bound to a NUMA node, and a
# tap by ifname whose up script puts it on a bridge (pve-bridge) and whose down script only
# writes that it ran.
# First two rollbacks (a fault before the commit point; the tool failing, then killed): when
# the dead new QEMU's qmeventd connection closes, qm cleanup's check finds the old QEMU, and
# the VNC socket is the old QEMU's again. Then at each upgrade: the new QEMU's argv[0],
# -pidfile, -name and -cpu are what qemu-server reads back; the new QEMU connects to qmeventd,
# is identified as the VM and delivers events; the old QEMU's connection closes without
# SHUTDOWN, and the check `qm cleanup` then makes (vm_running_locally) finds the VM running
# under the new PID (so qm cleanup would abort and unplug nothing), at that moment and at
# every later poll; the down script never runs; VNC answers; the guest answers pings on the
# bridge and its memory checker stays clean.
# Proxmox's lock of the VM (qemu-server's lock-VMID.conf, which `qm cleanup` holds while it
# polls): held by another operation, the upgrade waits and then is refused, the VM untouched;
# the stand-in's qm cleanup takes it as qm cleanup does, so each upgrade waits for the poll
# the previous close started (its window is 5 s here, 30 s in Proxmox), and the poll its own
# close starts waits for the upgrade: no poll can meet the new QEMU's pidfile half written.
# Then what qm does with the upgraded VM, in qemu-server's shapes through the qmp socket (the VM
# has a qcow2 disk): qm snapshot (blockdev-snapshot-internal-sync; with vmstate, stock QEMU's
# snapshot-save and snapshot-load), delsnapshot, qm shutdown (system_powerdown: the test guest
# has no power-button handler), qm stop (quit: qmeventd sees SHUTDOWN and the close, qm
# cleanup unplugs nothing; the tap's down script runs once, by the watcher the first upgrade
# started: the upgraded QEMU holds the tap by fd=, for which QEMU runs no downscript=), qm
# start, a third upgrade, and qm migrate: live to a target started with the same command line
# and -incoming in another network and mount namespace, after checking that the upgrade left
# the migration settings a fresh QEMU's; the guest clean on the target, and the source's down
# script run at its exit.
# The watcher (upgrade/tapwatch.c): one per tap, started by the first upgrade (whose old QEMU
# had the tap by ifname= with downscript=), kept by the second (whose old QEMU has it by fd=).
# Stock QEMU has no -id (a Proxmox patch adds it): it is left out here, and
# tests/unit/test-rewrite.c (proxmox_words_kept) checks that the rewrite keeps it.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 64
vm_qemu10
vm_guest_build || { echo "Bail out! cannot build the guest"; exit 1; }
standin=$here/../helpers/qmeventd.py
vmid=100

# The link lives where only root can write (under the build directory), as /usr/bin/kvm
# does: the tool keeps a name only when it can tell, through links only root made, that it
# leads to the new binary.
root=$(mktemp -d "$QU_BUILD/proxmox.XXXXXX") || exit 1
_vm_paths+=("$root")
ln -s "$QEMU" "$root/kvm"
run=$root/run/qemu-server # /var/run/qemu-server
mkdir -p "$run"
pidfile=$run/$vmid.pid
evsock=$root/run/qmeventd.sock
evlog=$root/qmeventd.log
lockdir=$root/lock # /run/lock/qemu-server
mkdir -p "$lockdir"
export QEMU_UPGRADE_PVE_LOCK_DIR=$lockdir
export QEMU_UPGRADE_TAPWATCH_LOG=$root/tapwatch.log # what the tap watchers did

# Guest RAM: Proxmox's `hugepages: 2` is a mem-path directory on hugetlbfs (/run/hugepages/kvm/
# 2048kB). Without huge pages here, the same form on a tmpfs directory.
memdir=$(mktemp -d) || exit 1 # a mount point outside $root, which is removed before the unmount
vm_defer "umount $memdir 2>/dev/null; rmdir $memdir"
huge=
if vm_hugepages_add 136; then
	if mount -t hugetlbfs -o pagesize=2M none "$memdir"; then
		huge=1
	else
		huge_why="cannot mount hugetlbfs on $memdir"
	fi
else
	huge_why=$HUGE_WHY
fi
if [ -z "$huge" ]; then
	mount -t tmpfs -o size=300M none "$memdir" || { echo "Bail out! cannot mount a tmpfs on $memdir"; exit 1; }
fi

# The bridge and the tap live in a network namespace of their own (parallel tests).
ns=qu-pve-$$
ip netns add "$ns" || { echo "Bail out! cannot create a network namespace"; exit 1; }
vm_defer "ip netns del $ns"
ip -n "$ns" link add vmbr0 type bridge && ip -n "$ns" addr add 10.0.6.1/24 dev vmbr0 &&
	ip -n "$ns" link set vmbr0 up || { echo "Bail out! cannot make a bridge in $ns"; exit 1; }
printf '#!/bin/sh\necho "up $1" >>%s\nip link set "$1" master vmbr0 && ip link set "$1" up\n' \
	"$root/scripts.log" >"$root/pve-bridge"
printf '#!/bin/sh\necho "down $1" >>%s\n' "$root/scripts.log" >"$root/pve-bridgedown"
chmod 755 "$root/pve-bridge" "$root/pve-bridgedown"

python3 "$standin" --socket "$evsock" --log "$evlog" --window 5 --lock-dir "$lockdir" 2>"$root/standin.err" &
vm_track_pid $! || exit 1
standin_pid=$!

# wait_log PATTERN [timeout_s]: until a line of the stand-in's log matches (grep -E).
wait_log() {
	local end=$((SECONDS + ${2:-30}))
	until grep -Eq -- "$1" "$evlog" 2>/dev/null; do
		[ $SECONDS -lt $end ] || { echo "# no '$1' in the stand-in's log:" && sed 's/^/#   /' "$evlog"; return 1; }
		kill -0 "$standin_pid" 2>/dev/null || { echo "# the stand-in died: $(cat "$root/standin.err")"; return 1; }
		sleep 0.05
	done
}
wait_log '^listening$' || { echo "Bail out! the stand-in qmeventd did not start"; exit 1; }

# word N PID: the Nth word (0: argv[0]) of PID's command line; after OPT PID: the word after OPT.
word() { tr '\0' '\n' <"/proc/$2/cmdline" | sed -n "$(($1 + 1))p"; }
after() { tr '\0' '\n' <"/proc/$2/cmdline" | sed -n "/^$1\$/{n;p;q}"; }
# vnc_ok: the console socket qemu-server's vncproxy connects to answers with VNC's greeting.
vnc_ok() { [ "$(timeout 5 socat -t 2 - "UNIX-CONNECT:$run/$vmid.vnc" </dev/null 2>/dev/null | head -c 12)" = "RFB 003.008" ]; }
# qm_check: what vm_running_locally says now.
qm_check() { python3 "$standin" --check "$pidfile"; }
# watchers: the PIDs holding the tap's watcher lock (the state directory's
# tapwatch-NETNSINODE-IFINDEX.lock: one watcher per tap), one per line.
watchers() {
	local lock p
	lock=/run/qemu-upgrade/tapwatch-$(stat -L -c %i "/run/netns/$ns")-$(ip -n "$ns" -o link show "$tap" | cut -d: -f1).lock
	for p in /proc/[0-9]*; do
		[ "$(find "$p/fd" -lname "$lock" 2>/dev/null | head -n 1)" ] && echo "${p#/proc/}"
	done
}
# wait_down N: until the scripts' log has N lines "down $tap" (30 s; the watcher may wait for
# Proxmox's lock while qm cleanup holds it).
wait_down() {
	local end=$((SECONDS + 30))
	until [ "$(grep -cx "down $tap" "$root/scripts.log")" -ge "$1" ]; do
		[ $SECONDS -lt $end ] || { echo "# the scripts' log: $(tr '\n' ';' <"$root/scripts.log"); watchers: $(tr '\n' ';' <"$root/tapwatch.log" 2>/dev/null)"; return 1; }
		sleep 0.1
	done
	sleep 0.5 # a second run would follow at once
	[ "$(grep -cx "down $tap" "$root/scripts.log")" = "$1" ]
}

tap=tap${vmid}i0
# The VM's disk: a qcow2 image (Proxmox's "dir" storage), on virtio-scsi as qemu-server writes it.
disk=$root/vm-$vmid-disk-0.qcow2
qemu-img create -q -f qcow2 "$disk" 64M || { echo "Bail out! cannot make $disk"; exit 1; }
# What qemu-server's config_to_command writes for the VM, after the program's name: every start
# (the first, `qm start` after `qm stop`, and the migration's target) uses these words.
pve_args=(-name "vm$vmid,debug-threads=on" -no-shutdown
	-chardev "socket,id=qmp,path=$run/$vmid.qmp,server=on,wait=off" -mon chardev=qmp,mode=control
	-chardev "socket,id=qmp-event,path=$evsock,reconnect=5" -mon chardev=qmp-event,mode=control
	-pidfile "$pidfile" -daemonize -vnc "unix:$run/$vmid.vnc,password=on" -smbios type=1,uuid=7b10d7af-b932-4c66-b2c3-3996152ec465
	-smp 1,sockets=1,cores=1,maxcpus=1 -nodefaults -display none -cpu qemu64,+lahf_lm -m 256
	-object "memory-backend-file,id=ram-node0,size=256M,mem-path=$memdir,share=on,prealloc=yes"
	-numa node,nodeid=0,cpus=0,memdev=ram-node0
	-device virtio-scsi-pci,id=scsihw0
	-drive "file=$disk,if=none,id=drive-scsi0,format=qcow2,aio=threads,detect-zeroes=on"
	-device scsi-hd,bus=scsihw0.0,channel=0,scsi-id=0,lun=0,drive=drive-scsi0,id=scsi0
	-netdev "type=tap,id=net0,ifname=$tap,script=$root/pve-bridge,downscript=$root/pve-bridgedown"
	-device virtio-net-pci,mac=BC:24:11:00:00:01,netdev=net0,id=net0 -machine type=q35 -accel tcg
	-kernel "$VM_KERNEL" -initrd "$VM_INITRD"
	-append "$VM_CMDLINE memcheck_mib=32 net_ip=10.0.6.15/24"
	-chardev "file,id=serial0,path=$root/serial.log" -serial chardev:serial0)
# pve_start: the VM started as qemu-server starts it (its network in $ns).
pve_start() { ip netns exec "$ns" "$root/kvm" "${pve_args[@]}" 2>"$root/qemu.err"; }
if ! pve_start; then
	echo "Bail out! QEMU did not start: $(cat "$root/qemu.err")"
	exit 1
fi
VM_PID=$(cat "$pidfile") && vm_track_pid "$VM_PID" || exit 1
VM_SERIAL=$root/serial.log
vm_wait_ready || exit 1
[ -n "$huge" ] || tap_diag "guest RAM on a tmpfs mem-path directory, not huge pages: $huge_why"

wait_log "^ready pid=$VM_PID\$"
tap_ok $? "the stand-in qmeventd identified QEMU $VM_PID as VM $vmid (SO_PEERCRED, -pidfile) and negotiated QMP"
tap_is "$(qm_check)" "$VM_PID" "vm_running_locally finds the VM running as $VM_PID"
ip netns exec "$ns" ping -c 3 -W 5 10.0.6.15 >/dev/null
tap_ok $? "the guest answers pings through the tap on the bridge"

# argv[0]: the link still leads to 7.2, so the new binary is another program: its own path.
plan=$("$QU_BIN" --pid "$VM_PID" --new-binary "$Q10" --dry-run --json --quiet 2>"$root/err")
tap_diag "dry run: $(jq -c '{result, strategy, argv0: .new_argv[0], refusal}' <<<"$plan") $(cat "$root/err")"
tap_is "$(jq -r '.new_argv[0]' <<<"$plan")" "$Q10" "kvm still leads to 7.2: the new QEMU would be named by its own path"
# Another operation holds Proxmox's lock of the VM: the upgrade waits for it until its timeout,
# then gives up before anything is touched (exit 2, as when another upgrade holds the VM).
exec 8>"$lockdir/lock-$vmid.conf" && flock -x 8
seen=$(grep -c '^connect ' "$evlog")
"$QU_BIN" --pid "$VM_PID" --new-binary "$Q10" --timeout 2 --json --quiet >/dev/null 2>"$root/err" 8>&-
rc=$?
exec 8>&-
tap_diag "lock held: exit $rc: $(tr '\n' ' ' <"$root/err" | cut -c1-300)"
[ "$rc" = 2 ] && grep -q "Proxmox holds VM $vmid's lock" "$root/err" && [ "$(cat "$pidfile")" = "$VM_PID" ] &&
	kill -0 "$VM_PID" && [ "$(grep -c '^connect ' "$evlog")" = "$seen" ]
tap_ok $? "Proxmox's lock of VM $vmid held by another operation: given up (exit 2) after waiting, nothing started"

# A package upgrade: the link now leads to the new QEMU, whose argv[0] keeps the name.
ln -sfn "$Q10" "$root/kvm"

# Rollbacks (a fault before the commit point; then the tool killed there, the guardian
# settles): the new QEMU, connected to qmeventd, is killed and its connection closes. By then
# the pidfile must name the old QEMU again, or qm cleanup would find no VM and tear the
# running one down.
export QEMU_UPGRADE_STATE_DIR=$root/state
settled() {
	local end=$((SECONDS + 30))
	until [ -z "$(ls -A "$QEMU_UPGRADE_STATE_DIR" 2>/dev/null)" ]; do
		[ $SECONDS -lt $end ] || { echo "# not settled: $(ls "$QEMU_UPGRADE_STATE_DIR")"; return 1; }
		sleep 0.1
	done
}
for fault in 6 6:kill; do
	old=$VM_PID
	seen=$(grep -c '^connect ' "$evlog")
	QEMU_UPGRADE_FAULT=$fault "$QU_BIN" --pid "$old" --new-binary "$Q10" --json --quiet >/dev/null 2>"$root/err"
	rc=$?
	failed=$(grep '^connect ' "$evlog" | tail -n +$((seen + 1)) | sed -n 's/^connect pid=\([0-9]*\) .*/\1/p' | tail -n 1)
	tap_diag "fault $fault: exit $rc, the new QEMU was ${failed:-not seen}: $(tr '\n' ' ' <"$root/err" | cut -c1-300)"
	want=1
	[ "$fault" = 6:kill ] && want=137
	[ "$rc" = "$want" ] && settled && [ -n "$failed" ] && [ "$(cat "$pidfile")" = "$old" ] &&
		wait_log "^check close=$failed vmid=$vmid running="
	tap_ok $? "fault $fault: rolled back after the new QEMU had connected to qmeventd; its connection closed"
	tap_is "$(sed -n "s/^check close=$failed vmid=$vmid running=//p" "$evlog")" "$old" \
		"fault $fault: at that close, vm_running_locally found the VM running as the old QEMU"
	! grep -q '^teardown' "$evlog"
	tap_ok $? "fault $fault: no cleanup would have run ($(grep '^teardown' "$evlog"))"
	vnc_ok
	tap_ok $? "fault $fault: the VNC socket answers (the old QEMU's, put back over the new one's)"
done
unset QEMU_UPGRADE_STATE_DIR

for round in "7.2 -> 10.0" "10.0 -> 10.0"; do
	old=$VM_PID
	report=$("$QU_BIN" --pid "$old" --new-binary "$Q10" --json --quiet 2>"$root/err")
	VM_PID=$(cat "$pidfile")
	vm_track_pid "$VM_PID" 2>/dev/null
	tap_diag "$round: $(jq -c '{result, strategy, old_pid, new_pid, pause_ms, total_ms, ram_copied_bytes}' <<<"$report") $(cat "$root/err")"
	[ "$(json_get "$report" result)" = upgraded ] && [ "$(json_get "$report" strategy)" = shared-ram-handover ] &&
		[ "$VM_PID" = "$(json_get "$report" new_pid)" ] && [ "$VM_PID" != "$old" ]
	tap_ok $? "$round: upgraded by handover, the pidfile names the new QEMU $VM_PID"
	tap_is "$(word 0 "$VM_PID")" "$root/kvm" "$round: argv[0] is still the kvm link"
	tap_is "$(readlink "/proc/$VM_PID/exe")" "$Q10" "$round: the program running is QEMU 10.0"
	[ "$(after -pidfile "$VM_PID")" = "$pidfile" ] && [ "$(after -name "$VM_PID")" = "vm$vmid,debug-threads=on" ] &&
		[ "$(after -cpu "$VM_PID")" = "qemu64,+lahf_lm" ] &&
		tr '\0' '\n' <"/proc/$VM_PID/cmdline" | grep -qx "socket,id=qmp-event,path=$evsock,reconnect=5"
	tap_ok $? "$round: -pidfile, -name, -cpu and the qmeventd chardev are word for word qemu-server's"
	wait_log "^ready pid=$VM_PID\$"
	tap_ok $? "$round: the new QEMU connected to qmeventd and was identified as VM $vmid"
	# An event of the new QEMU's own, after the commit: a stop and cont through the VM's qmp
	# socket (a pause of milliseconds). (Its RESUME at the commit arrives too, when its
	# connection was made before that: not asserted, a loaded machine may delay it.)
	tap_diag "$round: the new QEMU's events before this check: $(grep "^event pid=$VM_PID " "$evlog" | sed 's/.*name=//' | tr '\n' ' ')"
	vm_qmp "$run/$vmid.qmp" '{"execute":"stop"}' >/dev/null && vm_qmp "$run/$vmid.qmp" '{"execute":"cont"}' >/dev/null &&
		wait_log "^event pid=$VM_PID name=STOP\$" && wait_log "^event pid=$VM_PID name=RESUME\$"
	tap_ok $? "$round: qmeventd receives the new QEMU's events (STOP, RESUME)"
	wait_log "^check close=$old vmid=$vmid running="
	tap_ok $? "$round: the old QEMU's connection closed, and qm cleanup's check ran"
	closed=$(grep "^close pid=$old " "$evlog")
	[[ $closed == *" graceful=0 "* ]] && ! grep -q "^event pid=$old name=SHUTDOWN" "$evlog"
	tap_ok $? "$round: it closed without a SHUTDOWN event ($closed)"
	tap_is "$(sed -n "s/^check close=$old vmid=$vmid running=//p" "$evlog")" "$VM_PID" \
		"$round: at that close, vm_running_locally found the VM running as the new QEMU"
	! grep -q '^teardown' "$evlog"
	tap_ok $? "$round: no cleanup would have run ($(grep '^teardown' "$evlog"))"
	ip netns exec "$ns" ping -c 3 -W 5 10.0.6.15 >/dev/null
	tap_ok $? "$round: the guest answers pings through the tap"
	now=$(watchers | tr '\n' ' ')
	tap_diag "$round: down scripts: $(jq -r '.down_scripts // "(nothing said)"' <<<"$report"); watchers of $tap: $now"
	if [ "$round" = "7.2 -> 10.0" ]; then
		first=$now
		[[ $now =~ ^[0-9]+\ $ ]] && jq -r .down_scripts <<<"$report" | grep -q "runs when the tap goes (watcher PID ${now% })"
		tap_ok $? "$round: one watcher for $tap's down script (PID $now), as the report says"
	else
		[ -n "$first" ] && [ "$now" = "$first" ] && [ "$(jq -r '.down_scripts // ""' <<<"$report")" = "" ]
		tap_ok $? "$round: the second upgrade (the tap by fd= now) started no other watcher: still only PID $first"
	fi
	vnc_ok
	tap_ok $? "$round: the VNC socket answers (the new QEMU's)"
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
	tap_ok $? "$round: the guest runs and its memory checker is clean"
done

tap_is "$(cd "$run" && ls -A | tr '\n' ' ')" "$vmid.pid $vmid.qmp $vmid.vnc " "nothing left beside the pidfile and sockets"
tap_is "$(cat "$root/scripts.log")" "up $tap" "the up script ran once (at the first start), the down script never"
if [ -n "$huge" ]; then
	size=$(awk -v d="$memdir/qemu_back_mem.ram-node0." '/^[0-9a-f]+-/ { on = index($6, d) == 1; next }
		on && /^KernelPageSize:/ { print $2 $3; exit }' "/proc/$VM_PID/smaps")
	tap_is "$size" 2048kB "the new QEMU's guest RAM is the same hugetlbfs file, on 2 MiB pages"
else
	echo "ok $((_tap_n += 1)) # SKIP huge pages: $huge_why"
fi
tap_is "$(qm_check)" "$VM_PID" "vm_running_locally finds the VM running as $VM_PID at the end"
! grep -q '^teardown' "$evlog"
tap_ok $? "no poll of qm cleanup's check ever found the VM not running"
tap_diag "stand-in log: $(tr '\n' ';' <"$evlog")"

# --- What qm does with the upgraded VM -----------------------------------------------------
# Each in the shape qemu-server gives it (PVE/QemuServer.pm, PVE/QemuConfig.pm,
# PVE/QemuMigrate.pm), through the VM's qmp socket, against the upgraded QEMU.
qmp() { vm_qmp "${2:-$run/$vmid.qmp}" "$1"; }
# job_wait ID [SOCKET]: until QMP job ID has concluded (120 s), then dismissed; fails with its
# error, if it has one.
job_wait() {
	local end=$((SECONDS + 120)) st err
	while st=$(qmp '{"execute":"query-jobs"}' "$2" | jq -r --arg id "$1" '.return[] | select(.id == $id) | .status');
		[ "$st" != concluded ]; do
		[ $SECONDS -lt $end ] || { echo "# job $1 is still '$st'"; return 1; }
		sleep 0.2
	done
	err=$(qmp '{"execute":"query-jobs"}' "$2" | jq -r --arg id "$1" '.return[] | select(.id == $id) | .error // empty')
	qmp "{\"execute\":\"job-dismiss\",\"arguments\":{\"id\":\"$1\"}}" "$2" >/dev/null
	[ -z "$err" ] || { echo "# job $1: $err"; return 1; }
}
snapshots() { qemu-img info -U --output=json "$disk" | jq -c '[.snapshots[]? | {name, "vm-state-size"}]'; }

# qm snapshot without vmstate: qemu_volume_snapshot, for a qcow2 volume of a running VM,
# runs blockdev-snapshot-internal-sync on the drive; qm delsnapshot the -delete- twin.
r=$(qmp '{"execute":"blockdev-snapshot-internal-sync","arguments":{"device":"drive-scsi0","name":"snap1"}}')
tap_diag "qm snapshot: $r; $(snapshots)"
[ "$(jq -c .return <<<"$r")" = "{}" ] && [ "$(snapshots | jq -r '.[0].name')" = snap1 ]
tap_ok $? "qm snapshot (disk): blockdev-snapshot-internal-sync on the upgraded QEMU; qemu-img -U lists snap1"
# With vmstate Proxmox's QEMU runs its own savevm-start (pve-qemu-kvm only); stock QEMU's
# equivalent is the snapshot-save job, RAM into the same qcow2. A RAM state of the size of what
# the guest wrote proves the upgrade left no x-ignore-shared behind: with it, QEMU would skip
# the guest's shared RAM and save a snapshot that cannot be loaded.
node=$(qmp '{"execute":"query-block"}' | jq -r '.return[] | select(.device == "drive-scsi0") | .inserted["node-name"]')
qmp "{\"execute\":\"snapshot-save\",\"arguments\":{\"job-id\":\"save1\",\"tag\":\"vmsnap\",\"vmstate\":\"$node\",\"devices\":[\"$node\"]}}" >/dev/null &&
	job_wait save1
rc=$?
vmstate=$(snapshots | jq -r '.[] | select(.name == "vmsnap") | ."vm-state-size"')
tap_diag "snapshot-save on node $node: $(snapshots)"
[ "$rc" = 0 ] && [ "${vmstate:-0}" -ge $((32 << 20)) ] && [ "$(vm_runstate "$run/$vmid.qmp")" = running ]
tap_ok $? "snapshot with vmstate (snapshot-save): the guest's RAM saved ($vmstate bytes, at least its 32 MiB checked region), the VM running again"
qmp "{\"execute\":\"snapshot-load\",\"arguments\":{\"job-id\":\"load1\",\"tag\":\"vmsnap\",\"vmstate\":\"$node\",\"devices\":[\"$node\"]}}" >/dev/null &&
	job_wait load1 && [ "$(vm_runstate "$run/$vmid.qmp")" = running ] && vm_memcheck_progress 60 &&
	[ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the snapshot loaded back (snapshot-load): the guest runs on from it, its memory checker clean"
r=$(qmp '{"execute":"blockdev-snapshot-delete-internal-sync","arguments":{"device":"drive-scsi0","name":"snap1"}}')
qmp "{\"execute\":\"snapshot-delete\",\"arguments\":{\"job-id\":\"del1\",\"tag\":\"vmsnap\",\"devices\":[\"$node\"]}}" >/dev/null &&
	job_wait del1 && [ "$(snapshots)" = "[]" ]
tap_ok $? "qm delsnapshot: both snapshots deleted from the image"

# qm shutdown without a guest agent: system_powerdown (the ACPI power button), then qm waits
# for the pidfile's QEMU to go (60 s; with --forceStop it then sends SIGTERM).
r=$(qmp '{"execute":"system_powerdown"}')
[ "$(jq -c .return <<<"$r")" = "{}" ] && wait_log "^event pid=$VM_PID name=POWERDOWN\$"
tap_ok $? "qm shutdown: system_powerdown accepted by the upgraded QEMU, and qmeventd gets its POWERDOWN event"
# The test guest (a busybox initramfs: no acpid, nothing bound to the power button) cannot act
# on it, like any guest without a handler; qm shutdown would time out there, before and after
# an upgrade alike.
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ] && ! grep -q "^event pid=$VM_PID name=SHUTDOWN" "$evlog" &&
	[ "$(qm_check)" = "$VM_PID" ]
tap_ok $? "the test guest has no power-button handler and runs on (no SHUTDOWN), its memory checker clean"

# qm stop: QMP quit through the qmp socket, then polls check_running (the pidfile's QEMU)
# until it is gone. QEMU's SHUTDOWN (host-qmp-quit) reaches qmeventd before the close, so
# qm cleanup runs as after a clean shutdown: it unplugs nothing.
old=$VM_PID
r=$(qmp '{"execute":"quit"}')
end=$((SECONDS + 60))
until proc_gone "$old" && ! qm_check >/dev/null; do
	[ $SECONDS -lt $end ] || break
	sleep 0.1
done
tap_diag "qm stop: $r; check now: $(qm_check); log: $(grep -E "pid=$old |close=$old " "$evlog" | tr '\n' ';')"
proc_gone "$old" && [ ! -e "$pidfile" ]
tap_ok $? "qm stop: QEMU $old quits on QMP quit and its pidfile goes, as check_running waits for"
wait_log "^teardown close=$old vmid=$vmid graceful=1 unplug=none " && grep -q "^event pid=$old name=SHUTDOWN\$" "$evlog"
tap_ok $? "qmeventd saw SHUTDOWN, then the close: qm cleanup found VM $vmid stopped, unplugs nothing (a clean shutdown) and removes only its own files"
# The tap's down script (pve-bridgedown: PVE::Network::tap_unplug, which also removes a
# firewall bridge fwbrNiM and its veth pair) ran at the exit of a QEMU that opened the tap by
# ifname=. The upgraded QEMU holds it by fd=, with which QEMU takes no downscript=.
# ifname=. The upgraded QEMU holds it by fd=, with which QEMU takes no downscript=: the watcher
# the first upgrade started runs it when the tap goes, once.
wait_down 1 && [ "$(head -n 1 "$root/scripts.log")" = "up $tap" ] && [ -z "$(watchers)" ]
tap_ok $? "qm stop ran the tap's down script once, with the tap's name (watcher: $(tr '\n' ';' <"$root/tapwatch.log" 2>/dev/null))"

# qm start again, and another upgrade (10.0 -> 10.0: the kvm link leads to 10.0 now).
: >"$root/scripts.log"
pve_start && VM_PID=$(cat "$pidfile") && vm_track_pid "$VM_PID" && vm_wait_ready && wait_log "^ready pid=$VM_PID\$" &&
	[ "$(cat "$root/scripts.log")" = "up $tap" ]
rc=$?
[ "$rc" = 0 ] || tap_diag "qm start: QEMU said: $(tr '\n' ' ' <"$root/qemu.err"); scripts: $(tr '\n' ';' <"$root/scripts.log")"
tap_ok $rc "qm start after the stop: the VM boots again (its up script ran, qmeventd identified it)"
old=$VM_PID
report=$("$QU_BIN" --pid "$old" --new-binary "$Q10" --json --quiet 2>"$root/err")
VM_PID=$(cat "$pidfile")
vm_track_pid "$VM_PID" 2>/dev/null
tap_diag "before migrating: $(jq -c '{result, strategy, old_pid, new_pid, pause_ms}' <<<"$report") $(cat "$root/err")"
[ "$(json_get "$report" result)" = upgraded ] && [ "$VM_PID" != "$old" ] && wait_log "^check close=$old vmid=$vmid running=$VM_PID\$"
tap_ok $? "upgraded again (10.0 -> 10.0), qm cleanup's check at the old QEMU's close found the new one"

# qm migrate (online): the target node starts the VM from its config with -incoming
# unix:... and -S (vm_start, migratedfrom); the source gets migrate-set-capabilities (every
# capability it lists: auto-converge and xbzrle on, the others off), migrate-set-parameters
# (max-bandwidth, downtime-limit, xbzrle-cache-size) and migrate uri=unix:...; then cont on the
# target, SIGTERM for the source. The "other node" here: another network namespace (a bridge
# of its own) and another mount namespace, where the VM's run directory, memory directory and
# serial file are its own, so every word of the command line is the same.
ns2=qu-pve2-$$
ip netns add "$ns2" && vm_defer "ip netns del $ns2" && ip -n "$ns2" link add vmbr0 type bridge &&
	ip -n "$ns2" addr add 10.0.6.1/24 dev vmbr0 && ip -n "$ns2" link set vmbr0 up || { echo "Bail out! cannot make $ns2"; exit 1; }
: >"$root/serial-target.log"
mig=$root/migrate.sock
target=$(ip netns exec "$ns2" unshare -m --propagation private sh -c '
	root=$1 run=$2 mem=$3 pidfile=$4; shift 4
	mount -t tmpfs -o size=1M none "$root/run" && mkdir -p "$run" && mount -t tmpfs -o size=300M none "$mem" &&
	mount --bind "$root/serial-target.log" "$root/serial.log" && "$@" && cat "$pidfile"' \
	sh "$root" "$run" "$memdir" "$pidfile" "$root/kvm" "${pve_args[@]}" -incoming "unix:$mig" -S 2>"$root/target.err")
[[ $target =~ ^[0-9]+$ ]] && vm_track_pid "$target"
tsock=/proc/${target:-0}/root$run/$vmid.qmp
[[ $target =~ ^[0-9]+$ ]] && [ "$(vm_runstate "$tsock")" = inmigrate ]
tap_ok $? "the migration's target started with the same command line, -incoming and -S (PID ${target:-none}: $(cat "$root/target.err"))"
# What the upgrade left: the upgraded QEMU's migration settings are a fresh QEMU's.
settings() { qmp '{"execute":"query-migrate-capabilities"}' "$1" | jq -c '.return | sort_by(.capability)'; qmp '{"execute":"query-migrate-parameters"}' "$1" | jq -c '.return'; }
mine=$(settings "$run/$vmid.qmp") theirs=$(settings "$tsock")
tap_diag "the upgraded QEMU's migration settings: $mine"
[ -n "$mine" ] && [ "$mine" = "$theirs" ]
tap_ok $? "the upgraded QEMU's migration capabilities and parameters are a fresh QEMU's (nothing of the upgrade's left)"
caps=$(qmp '{"execute":"query-migrate-capabilities"}' | jq -c '[.return[] | {capability, state: (.capability == "auto-converge" or .capability == "xbzrle")}]')
qmp "{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":$caps}}" | grep -q '"return"' &&
	qmp '{"execute":"migrate-set-parameters","arguments":{"max-bandwidth":17179869184,"downtime-limit":100,"xbzrle-cache-size":33554432}}' | grep -q '"return"' &&
	qmp "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"unix:$mig\"}}" | grep -q '"return"'
rc=$?
end=$((SECONDS + 180))
while st=$(qmp '{"execute":"query-migrate"}' | jq -r '.return.status'); [ "$rc" = 0 ] && [ "$st" != completed ]; do
	[ "$st" != failed ] && [ $SECONDS -lt $end ] || { rc=1; break; }
	sleep 0.2
done
tap_diag "migration: $(qmp '{"execute":"query-migrate"}' | jq -c '.return | {status, "total-time", downtime, ram: {transferred: .ram.transferred}}')"
[ "$rc" = 0 ] && qmp '{"execute":"cont"}' "$tsock" | grep -q '"return"' && [ "$(vm_runstate "$tsock")" = running ]
tap_ok $? "qm migrate: the upgraded QEMU migrates live to the target, which runs the guest after cont"
kill -TERM "$VM_PID" && proc_gone_soon "$VM_PID" 30
tap_ok $? "the source QEMU ends on SIGTERM, as vm_stop does for a migrated VM"
# The source's tap (held by fd= since the third upgrade) goes with it: its down script runs,
# as QEMU would have run it at its exit.
wait_down 1
tap_ok $? "the source's down script ran once at its exit ($(tr '\n' ';' <"$root/scripts.log"))"
VM_SERIAL=$root/serial-target.log
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "on the target the guest runs on, its memory checker clean"
ip netns exec "$ns2" ping -c 3 -W 5 10.0.6.15 >/dev/null
tap_ok $? "on the target the guest answers pings through its tap on the target's bridge"
tap_done
