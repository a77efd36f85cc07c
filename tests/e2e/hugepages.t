#!/usr/bin/env bash
# Guest RAM on 2 MiB huge pages given as a mem-path directory on hugetlbfs (Proxmox's
# `hugepages:`, libvirt's <hugepages/>): QEMU makes an unlinked file in the directory and keeps
# it open. With share=on that file is handed over like a memfd: nothing is copied, and the new
# QEMU maps the same file, still on huge pages. With share=off a copy would move the guest
# onto normal pages, which is refused with the reason, --allow-copy or not.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

pages=/proc/sys/vm/nr_hugepages
want=192 # 128 for the 256 MiB guest, 64 for the 128 MiB one
old_pages=$(cat "$pages") || { echo "1..0 # SKIP $pages is missing: the kernel has no hugetlbfs"; exit 0; }
grep -q hugetlbfs /proc/filesystems || { echo "1..0 # SKIP the kernel has no hugetlbfs"; exit 0; }
echo $((old_pages + want)) >"$pages" 2>/dev/null
vm_defer "echo $old_pages >$pages"
got=$(cat "$pages")
if [ "$got" -lt $((old_pages + want)) ]; then
	echo "1..0 # SKIP the kernel gave $((got - old_pages)) of $want free 2 MiB huge pages (memory too fragmented?)"
	exit 0
fi
hugedir=$(mktemp -d)
mount -t hugetlbfs -o pagesize=2M none "$hugedir" ||
	{ echo "1..0 # SKIP cannot mount hugetlbfs on $hugedir"; rmdir "$hugedir"; exit 0; }
vm_defer "umount $hugedir; rmdir $hugedir"

# The maps line of the guest's RAM file in QEMU PID $1: "inode path".
ram_file() { awk -v d="$hugedir/qemu_back_mem.mem0." 'index($6, d) == 1 { print $5, $6; exit }' "/proc/$1/maps"; }
# KernelPageSize of that mapping.
ram_pagesize() {
	awk -v d="$hugedir/qemu_back_mem.mem0." 'index($6, d) == 1 { on = 1; next } /^[0-9a-f]+-/ { on = 0 }
		on && /^KernelPageSize:/ { print $2 $3; exit }' "/proc/$1/smaps"
}

tap_plan 10
VM_RAM=anon vm_start huge-shared -object "memory-backend-file,id=mem0,size=256M,mem-path=$hugedir,share=on" \
	-machine memory-backend=mem0 || exit 1
vm_wait_ready || exit 1
before=$(ram_file "$VM_PID")
tap_diag "old QEMU maps: $before; $(grep -E '^HugePages_(Total|Free)' /proc/meminfo | tr -s ' \n' ' ')"
plan=$("$QU_BIN" inspect --pid "$VM_PID" --json --quiet)
tap_diag "plan: $plan"
[ "$(json_get "$plan" strategy)" = shared-ram-handover ] &&
	jq -e '.descriptors[] | select(.kind == "ram" and (.what | test("memory-backend-file")))' <<<"$plan" >/dev/null
tap_ok $? "the plan hands over the unlinked file in the hugetlbfs directory"
old=$VM_PID
vm_upgrade
tap_diag "upgrade: $REPORT $(cat "$VM_DIR/err")"
[ "$(json_get "$REPORT" result)" = upgraded ] && [ "$(json_get "$REPORT" strategy)" = shared-ram-handover ] &&
	[ "$(json_get "$REPORT" ram_copied_bytes)" -lt 1048576 ]
tap_ok $? "upgraded by handover, the guest's RAM not copied (only ROMs and ACPI tables, ~200 KiB)"
after=$(ram_file "$VM_PID")
tap_diag "new QEMU $VM_PID maps: $after"
[ "$VM_PID" != "$old" ] && [ -n "$before" ] && [ "${after%% *}" = "${before%% *}" ]
tap_ok $? "the new QEMU maps the same hugetlbfs file (inode ${before%% *})"
tap_is "$(ram_pagesize "$VM_PID")" 2048kB "the new QEMU's guest RAM is on 2 MiB pages"
vm_upgrade
tap_diag "second upgrade: $REPORT"
[ "$(json_get "$REPORT" result)" = upgraded ] && [ "$(json_get "$REPORT" ram_copied_bytes)" -lt 1048576 ] &&
	[ "$(ram_file "$VM_PID" | cut -d' ' -f1)" = "${before%% *}" ]
tap_ok $? "a second upgrade (from mem-path=/proc/self/fd/N) hands the same file over again"
vm_memcheck_progress 60
tap_ok $? "the guest makes progress"
tap_is "$(vm_memcheck_errors)" 0 "the guest reports no corruption"

VM_MEM=128M VM_MEMCHECK_MIB=16 VM_RAM=anon vm_start huge-private \
	-object "memory-backend-file,id=mem0,size=128M,mem-path=$hugedir,share=off" -machine memory-backend=mem0 || exit 1
vm_wait_ready || exit 1
for flags in "" "--allow-copy"; do
	# shellcheck disable=SC2086
	err=$("$QU_BIN" --pid "$VM_PID" $flags --quiet 2>&1 >/dev/null)
	rc=$?
	tap_diag "share=off ${flags:-(no flag)}: exit $rc: $err"
	[ "$rc" = 3 ] && grep -q "2048 KiB huge pages (mem-path on hugetlbfs), and a copy would move it onto normal 4 KiB pages: make the backend share=on" <<<"$err"
	tap_ok $? "share=off ${flags:-without flags}: refused with the page size and what to do"
done
tap_is "$(vm_runstate "$VM_QMP")" running "the refused VM still runs"
tap_done
