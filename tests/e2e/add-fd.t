#!/usr/bin/env bash
# A descriptor passed in with -add-fd (libvirt 9.0 passes a pipe to virtlogd, or a log file,
# this way and names it /dev/fdset/N in a chardev) follows the VM: QEMU dups it into the set
# and closes the number it was given, so the set's member (query-fdsets) is carried, to a new
# number in the same set, and what the new QEMU writes to /dev/fdset/N arrives where the old
# one's did. Here an HMP monitor on a file chardev: each QEMU writes its banner there.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 5
logdir=$(mktemp -d)
_vm_paths+=("$logdir")
log=$logdir/monitor.log
exec 3>>"$log"
vm_start addfd -add-fd set=1,fd=3,opaque=monitor-log \
	-chardev file,id=mon1,path=/dev/fdset/1,append=on -mon chardev=mon1,mode=readline || exit 1
exec 3>&-
banners() { grep -c 'QEMU .* monitor' "$log" 2>/dev/null || true; }
for _ in $(seq 600); do [ "$(banners)" -ge 1 ] && break; sleep 0.1; done
tap_is "$(banners)" 1 "the old QEMU writes its monitor to the passed-in descriptor"
vm_wait_ready || exit 1
vm_upgrade
tap_is "$(json_get "$REPORT" result)" upgraded "the VM with an -add-fd descriptor is upgraded" ||
	cat "$VM_DIR/err" >&2
for _ in $(seq 600); do [ "$(banners)" -ge 2 ] && break; sleep 0.1; done
tap_is "$(banners)" 2 "the new QEMU writes to the same file through /dev/fdset/1"
tr '\0' '\n' <"/proc/$VM_PID/cmdline" | grep -qx 'set=1,fd=[0-9]*,opaque=monitor-log'
tap_ok $? "the new QEMU gets the set at a new number, with its opaque"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest keeps running without memory errors"
tap_done
