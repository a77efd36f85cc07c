#!/usr/bin/env bash
# The compatibility matrix (issue 17): every pair old -> new of QEMU 5.2 (bullseye), 7.2
# (bookworm), 10.0 (trixie's 10.0.13) and 11.1 (sid), old <= new, plus 11.1 -> 10.0 as a
# downgrade (a VM on 11.1's own machine type, which 10.0 does not have: refused; and one
# pinned to pc-q35-10.0, as libvirt pins it), for each kind of guest RAM: a shared memfd, a
# shared named file, anonymous (-m).
# Each upgrade is asked first without --allow-copy: it ends zero-copy, or is refused (exit 3)
# with the VM untouched and still running on the old QEMU; a refused one is asked again with
# --allow-copy and is copied once. Either way the VM ends on the new binary with its memory
# checker clean. What the run saw is written to $QU_BUILD/qemu-matrix.tsv; the table in the
# README and the man page is made from that file by tests/qemu-versions/table.sh, and the last
# test checks that they show what this run saw.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

declare -A bin
vm_qemu_suite bullseye
bin[5.2]=$QS
bin[7.2]=/usr/bin/qemu-system-x86_64
vm_qemu_suite trixie
bin[10.0]=$QS
vm_qemu_suite sid
bin[11.1]=$QS
pairs=("5.2 5.2" "5.2 7.2" "5.2 10.0" "5.2 11.1" "7.2 7.2" "7.2 10.0" "7.2 11.1" "10.0 10.0" "10.0 11.1"
	"11.1 11.1" "11.1 10.0" "11.1 10.0 pc-q35-10.0")
kinds=(memfd file anon)
tap_plan $((${#pairs[@]} * ${#kinds[@]} + 1))
results=$QU_BUILD/qemu-matrix.tsv.new
: >"$results"

# What must happen, from what QEMU does: a shared file is handed over by every version; a
# memfd only by a sender older than 8.1 (8.1+ sends memfd RAM even with x-ignore-shared);
# anonymous RAM has nothing to hand over.
expected() { # OLD NEW MACHINE KIND
	[ "$1 $2 $3" = "11.1 10.0 " ] && { echo refused; return; }
	case $4 in
	file) echo zero-copy ;;
	memfd) case $1 in 5.2 | 7.2) echo zero-copy ;; *) echo copy ;; esac ;;
	anon) echo copy ;;
	esac
}

# A refusal (exit $rc) leaves the VM as it was: the same QEMU ($first), running.
untouched() { [ "$rc" = 3 ] && [ "$VM_PID" = "$first" ] && kill -0 "$first" 2>/dev/null && vm_memcheck_progress 60; }

for pair in "${pairs[@]}"; do
	read -r old new machine <<<"$pair"
	for kind in "${kinds[@]}"; do
		name="$old -> $new${machine:+ (-machine $machine)}, $kind RAM"
		want=$(expected "$old" "$new" "$machine" "$kind")
		# A VM that does not start is this case's failure, said with what QEMU or the guest
		# printed; the other cases still run.
		if ! QEMU=${bin[$old]} VM_RAM=$kind VM_MEM=128M VM_MEMCHECK_MIB=16 vm_start "m-$old-$new-$kind" \
			${machine:+-machine "$machine"} 2>"$QU_BUILD/qemu-matrix.start" || ! vm_wait_ready 2>>"$QU_BUILD/qemu-matrix.start"; then
			printf '%s\t%s%s\t%s\t%s\n' "$old" "$new" "${machine:+ (-machine $machine)}" "$kind" "not-started" >>"$results"
			tap_ok 1 "$name: the VM on QEMU $old did not start: $(tr '\n' ' ' <"$QU_BUILD/qemu-matrix.start" | cut -c1-400)"
			vm_stop
			continue
		fi
		first=$VM_PID outcome=failed why=
		vm_upgrade --new-binary "${bin[$new]}"
		rc=$?
		tap_diag "$name: exit $rc: $REPORT"
		if [ "$rc" = 0 ] && [ "$(json_get "$REPORT" ram_copied_bytes)" -lt 1048576 ]; then
			outcome=zero-copy
		elif untouched; then
			outcome=refused
			grep -q "does not offer machine type" "$VM_DIR/err" && outcome=refused:machine
			if grep -q -- --allow-copy "$VM_DIR/err"; then
				vm_upgrade --new-binary "${bin[$new]}" --allow-copy
				rc=$?
				tap_diag "$name, --allow-copy: exit $rc: $REPORT"
				[ "$rc" = 0 ] && outcome="copy:$(json_get "$REPORT" strategy)"
				[ "$rc" = 0 ] || untouched || outcome=failed
			fi
		fi
		[ "$outcome" = failed ] && why="exit $rc: $(tail -n 2 "$VM_DIR/err")"
		# Upgraded: on the new binary; refused: on the old one, as it was. Clean either way.
		clean=0
		if [ "${outcome%%:*}" = refused ]; then
			[ "$VM_PID" = "$first" ] && [ "$(readlink "/proc/$VM_PID/exe")" = "${bin[$old]}" ]
		else
			[ "$VM_PID" != "$first" ] && [ "$(readlink "/proc/$VM_PID/exe")" = "${bin[$new]}" ]
		fi && vm_memcheck_progress 60 2>"$QU_BUILD/qemu-matrix.progress" && [ "$(vm_memcheck_errors)" = 0 ] && clean=1
		[ "$clean" = 1 ] || tap_diag "$name: not clean: PID $first -> ${VM_PID:-none} ($(readlink "/proc/$VM_PID/exe" 2>/dev/null || echo gone)), $(cat "$QU_BUILD/qemu-matrix.progress" 2>/dev/null) last memcheck: $(vm_memcheck_status 2>/dev/null | tr -d '\r'), corrupt lines $(grep -ac 'MEMCHECK CORRUPT' "$VM_SERIAL" 2>/dev/null)"
		printf '%s\t%s%s\t%s\t%s\n' "$old" "$new" "${machine:+ (-machine $machine)}" "$kind" "$outcome" >>"$results"
		[ "$clean" = 1 ] && [ "${outcome%%:*}" = "$want" ]
		tap_ok $? "$name: ${outcome/:/ by } (expected $want), the guest clean${why:+ ($why)}"
		vm_stop
	done
done
mv "$results" "$QU_BUILD/qemu-matrix.tsv"
diff=$("$QU_ROOT/tests/qemu-versions/table.sh" --check "$QU_BUILD/qemu-matrix.tsv" 2>&1)
tap_ok $? "README.md and docs/qemu-upgrade.1 show the matrix this run saw${diff:+: $diff}"
tap_done
