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
# Stock QEMU has no -id (a Proxmox patch adds it): it is left out here, and
# tests/unit/test-rewrite.c (proxmox_words_kept) checks that the rewrite keeps it.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 44
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

# Guest RAM: Proxmox's `hugepages: 2` is a mem-path directory on hugetlbfs (/run/hugepages/kvm/
# 2048kB). Without huge pages here, the same form on a tmpfs directory.
memdir=$(mktemp -d) || exit 1 # a mount point outside $root, which is removed before the unmount
vm_defer "umount $memdir 2>/dev/null; rmdir $memdir"
huge=
pages=/proc/sys/vm/nr_hugepages
if old_pages=$(cat "$pages" 2>/dev/null) && grep -q hugetlbfs /proc/filesystems; then
	echo $((old_pages + 136)) >"$pages" 2>/dev/null
	vm_defer "echo $old_pages >$pages"
	free=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages)
	if [ "$free" -ge 128 ] && mount -t hugetlbfs -o pagesize=2M none "$memdir"; then
		huge=1
	else
		huge_why="the kernel gave $free free 2 MiB huge pages of the 128 needed"
	fi
else
	huge_why="the kernel has no hugetlbfs"
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

tap=tap${vmid}i0
if ! ip netns exec "$ns" "$root/kvm" -name "vm$vmid,debug-threads=on" -no-shutdown \
	-chardev "socket,id=qmp,path=$run/$vmid.qmp,server=on,wait=off" -mon chardev=qmp,mode=control \
	-chardev "socket,id=qmp-event,path=$evsock,reconnect=5" -mon chardev=qmp-event,mode=control \
	-pidfile "$pidfile" -daemonize -vnc "unix:$run/$vmid.vnc,password=on" -smbios type=1,uuid=7b10d7af-b932-4c66-b2c3-3996152ec465 \
	-smp 1,sockets=1,cores=1,maxcpus=1 -nodefaults -display none -cpu qemu64,+lahf_lm -m 256 \
	-object "memory-backend-file,id=ram-node0,size=256M,mem-path=$memdir,share=on,prealloc=yes" \
	-numa node,nodeid=0,cpus=0,memdev=ram-node0 \
	-netdev "type=tap,id=net0,ifname=$tap,script=$root/pve-bridge,downscript=$root/pve-bridgedown" \
	-device virtio-net-pci,mac=BC:24:11:00:00:01,netdev=net0,id=net0 -machine type=q35 -accel tcg \
	-kernel "$VM_KERNEL" -initrd "$VM_INITRD" \
	-append "$VM_CMDLINE memcheck_mib=32 net_ip=10.0.6.15/24" \
	-chardev "file,id=serial0,path=$root/serial.log" -serial chardev:serial0 2>"$root/qemu.err"; then
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
tap_done
