# libvirt.sh: a real libvirt daemon for a test, started by the test itself (virtlogd -d, then
# libvirtd -d, with their default PID files, which is where qemu-upgrade looks for them), and
# everything it made undone at exit: its domain destroyed and undefined, the daemons killed by
# the PIDs in their PID files (each checked to be that daemon), the tap deleted, /dev/kvm's
# owner and mode put back, and every file and directory that appeared under libvirt's trees
# removed. Source after vm.sh (it uses vm_defer for the cleanup).
#
# lv_require: skips the whole test (TAP "1..0 # SKIP") when libvirt is not installed, when
# PID 1 is systemd (libvirt runs as its service there), or when a libvirt daemon already runs.

LV_TREES="/run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt /etc/libvirt"
LV_URI=qemu:///system

lv_virsh() { timeout 60 virsh -q -c "$LV_URI" "$@"; }

# _lv_daemon_pid NAME PIDFILE: the PID in PIDFILE when it is that daemon's, else nothing.
_lv_daemon_pid() {
	local pid
	pid=$(cat "$2" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(command -v "$1")" ] && echo "$pid"
}
lv_libvirtd_pid() { _lv_daemon_pid libvirtd /run/libvirtd.pid; }

lv_require() {
	local b
	for b in libvirtd virtlogd virsh; do
		command -v "$b" >/dev/null || { echo "1..0 # SKIP $b is not installed (tests/install-deps.sh installs libvirt-daemon-system libvirt-clients)"; exit 0; }
	done
	if [ "$(cat /proc/1/comm)" = systemd ]; then
		echo "1..0 # SKIP PID 1 is systemd: libvirt runs as its service here, and this test starts its own daemon"
		exit 0
	fi
	for b in /run/libvirtd.pid /run/libvirt/virtqemud.pid /run/virtlogd.pid; do
		if [ -n "$(_lv_daemon_pid "$(basename "$b" .pid)" "$b")" ]; then
			echo "1..0 # SKIP a libvirt daemon already runs here ($b): this test starts and stops its own"
			exit 0
		fi
	done
}

# _lv_wait_exit PID: until it is gone (10 s).
_lv_wait_exit() {
	local end=$((SECONDS + 10))
	while [ -e "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.05
	done
}

lv_cleanup() {
	local pid
	if [ -n "${LV_DOMAIN:-}" ] && [ -n "$(lv_libvirtd_pid)" ]; then
		lv_virsh destroy "$LV_DOMAIN" >/dev/null 2>&1
		lv_virsh undefine "$LV_DOMAIN" >/dev/null 2>&1
	fi
	# A QEMU libvirt lost track of (a failed test): by the PIDs the test saw.
	for pid in ${LV_QEMU_PIDS:-}; do
		[ "$(_vm_starttime "${pid%:*}")" = "${pid#*:}" ] && kill -KILL "${pid%:*}" 2>/dev/null
	done
	for pid in "$(lv_libvirtd_pid)" "$(_lv_daemon_pid virtlogd /run/virtlogd.pid)"; do
		[ -n "$pid" ] || continue
		kill -TERM "$pid" 2>/dev/null
		_lv_wait_exit "$pid" || kill -KILL "$pid" 2>/dev/null
	done
	[ -z "${LV_TAP:-}" ] || ip link del "$LV_TAP" 2>/dev/null
	[ -z "${LV_KVM_MODE:-}" ] || { chown "$LV_KVM_OWNER" /dev/kvm; chmod "$LV_KVM_MODE" /dev/kvm; }
	# What the daemons made, deepest first; what was there before stays.
	if [ -n "${LV_BEFORE:-}" ]; then
		# shellcheck disable=SC2086
		find $LV_TREES -depth 2>/dev/null | sort -r | while read -r f; do
			grep -qxF -- "$f" "$LV_BEFORE" || rm -rf -- "$f"
		done
		rm -f "$LV_BEFORE"
	fi
	rm -f /run/libvirtd.pid /run/virtlogd.pid
}

# lv_track_qemu PID: killed at exit if libvirt did not end it.
lv_track_qemu() { LV_QEMU_PIDS="${LV_QEMU_PIDS:-} $1:$(_vm_starttime "$1")"; }

# lv_start_daemons: virtlogd and libvirtd, until virsh answers.
lv_start_daemons() {
	LV_BEFORE=$(mktemp)
	# shellcheck disable=SC2086
	find $LV_TREES -depth 2>/dev/null | sort >"$LV_BEFORE"
	vm_defer lv_cleanup
	# With /dev/kvm at root:root 0600 libvirt probes QEMU again on each lookup (44 s for a
	# define, field-notes.md); Debian's usual root:kvm 0660 avoids it. Put back at exit.
	if [ -e /dev/kvm ]; then
		LV_KVM_OWNER=$(stat -c %u:%g /dev/kvm) LV_KVM_MODE=$(stat -c %a /dev/kvm)
		chown root:kvm /dev/kvm && chmod 0660 /dev/kvm
	fi
	virtlogd -d || return
	libvirtd -d || return
	local end=$((SECONDS + 60))
	until lv_virsh version >/dev/null 2>&1; do
		[ $SECONDS -lt $end ] || { echo "lv_start_daemons: libvirtd does not answer" >&2; return 1; }
		sleep 0.1
	done
}

# lv_status_pid: the PID libvirt's status file records for the domain.
lv_status_pid() {
	sed -n "s/^<domstatus [^>]*pid='\([0-9]*\)'.*/\1/p" "/run/libvirt/qemu/$LV_DOMAIN.xml" 2>/dev/null
}

# lv_wait_state STATE [timeout_s]: until virsh domstate says STATE (libvirt reconnects to its
# VMs in the background after a start).
lv_wait_state() {
	local end=$((SECONDS + ${2:-30})) s
	while s=$(lv_virsh domstate "$LV_DOMAIN" 2>/dev/null); [ "$s" != "$1" ]; do
		[ $SECONDS -lt $end ] || { echo "lv_wait_state: domain is '$s', not '$1'" >&2; return 1; }
		sleep 0.1
	done
}

# lv_domain_xml NAME DIR TAP: a TCG domain with shared memfd RAM, the memcheck guest booted
# directly (its kernel and initrd copied into DIR: libvirt relabels what it boots), a tap
# network, a file serial log (DIR/serial.log), an iothread and a virtio-scsi controller.
# <acpi/>: without it libvirt 9.0 passes -no-acpi, an option QEMU 10.0 no longer has.
lv_domain_xml() {
	cat <<EOF
<domain type='qemu'>
  <name>$1</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <iothreads>1</iothreads>
  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$2/vmlinuz</kernel>
    <initrd>$2/initrd.img</initrd>
    <cmdline>$VM_CMDLINE memcheck_mib=${VM_MEMCHECK_MIB:-32}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>${QEMU:-/usr/bin/qemu-system-x86_64}</emulator>
    <interface type='ethernet'><target dev='$3' managed='no'/><model type='virtio'/></interface>
    <serial type='file'><source path='$2/serial.log'/><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <controller type='scsi' model='virtio-scsi'/>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

# lv_no_spare: nothing of an upgrade's left beside the domain's files in libvirt's run
# directory (the new QEMU's locked PID file NAME.pid.qemu-upgrade-new goes with a rollback, the
# rewrite's temporary files .NAME.*.qemu-upgrade.* with the rewrite), else names it on stderr.
# libvirt's own temporary files (NAME.xml.new while a daemon saves its status) are its own.
lv_no_spare() {
	local left
	left=$(ls -A /run/libvirt/qemu | grep -F -- "$LV_DOMAIN" | grep -F qemu-upgrade)
	[ -z "$left" ] || { echo "lv_no_spare: left in /run/libvirt/qemu: $left" >&2; return 1; }
}

# lv_pidfile_lockers: the PIDs holding a lock (/proc/locks) on the inode now at libvirt's
# PID file for the domain, one a line; nothing when the file is missing or unlocked. The
# file's device is matched too (/proc/locks writes it as major:minor in hex).
lv_pidfile_lockers() {
	local f=/run/libvirt/qemu/$LV_DOMAIN.pid st
	st=$(stat -c '%Hd %Ld %i' "$f" 2>/dev/null) || return 0
	set -- $st
	# A waiter's line reads "N: -> POSIX ...": not a holder.
	awk -v want="$(printf '%02x:%02x:%s' "$1" "$2" "$3")" '$2 != "->" && $6 == want { print $5 }' /proc/locks
}

# lv_pidfile_locked_by PID: libvirt's PID file for the domain names PID and PID alone holds
# its lock (as libvirt left it when it started QEMU), else says what it saw on stderr.
lv_pidfile_locked_by() {
	local f=/run/libvirt/qemu/$LV_DOMAIN.pid holders text
	holders=$(lv_pidfile_lockers | sort -u | tr '\n' ' ')
	text=$(cat "$f" 2>/dev/null)
	[ "$text" = "$1" ] && [ "$holders" = "$1 " ] && return 0
	echo "lv_pidfile_locked_by $1: $f says '$text', inode $(stat -c %i "$f" 2>/dev/null) locked by '${holders% }' ($(grep -F "$(stat -c %i "$f" 2>/dev/null)" /proc/locks | tr '\n' ';'))" >&2
	return 1
}
