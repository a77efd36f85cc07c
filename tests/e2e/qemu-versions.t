#!/usr/bin/env bash
# Other QEMU versions from Debian's registry, run here as relocatable prefixes
# (tests/qemu-versions/fetch.sh): bullseye's 5.2, trixie's 10.0.13 and sid's 11.1.3 (on its own
# glibc 2.43). `check --binary` works on each, and one guest climbs the versions with its RAM
# in a shared file, zero-copy at every hop: 5.2 -> 7.2 -> 10.0.13 -> 11.1.3, then back down to
# 10.0.13. The full matrix of issue 17 (every pair, every kind of guest RAM) is not here yet.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 22
declare -A bin want exec
want=([bullseye]=5.2.0 [trixie]=10.0.13 [sid]=11.1.3)
# cpr-exec came with QEMU 10.2: offered by sid's 11.1.3 only.
exec=([bullseye]=NO [trixie]=NO [sid]=yes)
for s in bullseye trixie sid; do
	vm_qemu_suite "$s"
	bin[$s]=$QS
	out=$("$QU_BIN" check --binary "$QS" 2>&1)
	rc=$?
	line=$(grep -E '^(yes|NO) +QEMU binary' <<<"$out")
	tap_diag "$s: exit $rc: $line"
	[ "$rc" = 0 ] && grep -q "^yes  *QEMU binary  *${want[$s]} " <<<"$line"
	tap_ok $? "check --binary on $s's QEMU: usable, version ${want[$s]}"
	line=$(grep -E '^(yes|NO) +cpr-exec' <<<"$out")
	tap_diag "$s: $line"
	grep -q "^${exec[$s]} " <<<"$line"
	tap_ok $? "check --binary on $s's QEMU: cpr-exec (--keep-pid) ${exec[$s]}"
done

QEMU=${bin[bullseye]} VM_RAM=file vm_start versions || exit 1
vm_wait_ready || exit 1
hops=("5.2 -> 7.2:/usr/bin/qemu-system-x86_64:7.2"
	"7.2 -> 10.0.13:${bin[trixie]}:10.0.13"
	"10.0.13 -> 11.1.3:${bin[sid]}:11.1.3"
	"11.1.3 -> 10.0.13 (down):${bin[trixie]}:10.0.13")
for h in "${hops[@]}"; do
	name=${h%%:*} rest=${h#*:}
	b=${rest%:*} v=${rest##*:}
	old=$VM_PID
	vm_upgrade --new-binary "$b"
	rc=$?
	tap_diag "$name: exit $rc: $REPORT $(tail -n 3 "$VM_DIR/err")"
	[ "$rc" = 0 ] && [ "$(json_get "$REPORT" result)" = upgraded ] && [ "$VM_PID" != "$old" ] &&
		[ "$(json_get "$REPORT" strategy)" = shared-ram-handover ] && [ "$(json_get "$REPORT" ram_copied_bytes)" -lt 1048576 ]
	tap_ok $? "$name: upgraded by handover, no guest RAM copied"
	[ "$(readlink "/proc/$VM_PID/exe")" = "$b" ] && [[ $(json_get "$REPORT" new_version) == "$v"* ]] &&
		[ "$(json_get "$REPORT" machine)" = pc-q35-5.2 ]
	tap_ok $? "$name: the VM runs on $v, still machine pc-q35-5.2"
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
	tap_ok $? "$name: the guest makes progress, no corruption"
	tap_is "$(json_get "$REPORT" old_pid)" "$old" "$name: the report names the old PID"
done
tap_done
