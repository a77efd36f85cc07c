#!/usr/bin/env bash
# Guest RAM on 2 MiB huge pages given as a mem-path directory on hugetlbfs (Proxmox's
# `hugepages:`, libvirt's <hugepages/>): QEMU makes an unlinked file in the directory and keeps
# it open. With share=on that file is handed over like a memfd: nothing is copied, and the new
# QEMU maps the same file, still on huge pages. With share=off the RAM is copied (with
# --allow-copy) into a memfd on huge pages of the same size, never onto normal pages, and is
# handed over from then on; without enough free huge pages the copy is refused and says so.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

pages=/proc/sys/vm/nr_hugepages
want=448 # 128 for the 256 MiB guest; 64 for each 128 MiB one, 64 for each copy
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
# KernelPageSize of the mapping of QEMU PID $1 whose path starts with $2.
ram_pagesize() {
	awk -v d="$2" '/^[0-9a-f]+-/ { on = index($6, d) == 1; next } on && /^KernelPageSize:/ { print $2 $3; exit }' \
		"/proc/$1/smaps"
}

tap_plan 19
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
tap_is "$(ram_pagesize "$VM_PID" "$hugedir/qemu_back_mem.mem0.")" 2048kB "the new QEMU's guest RAM is on 2 MiB pages"
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
err=$("$QU_BIN" --pid "$VM_PID" --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "share=off, no flag: exit $rc: $err"
[ "$rc" = 3 ] && grep -q "'mem0' is memory-backend-file with share=off.*pass --allow-copy" <<<"$err"
tap_ok $? "share=off without --allow-copy: refused, --allow-copy named"
# Take the pool's free pages away but 8: the copy must not fall back to normal pages.
free=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages)
resv=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages)
echo $(($(cat "$pages") - (free - resv) + 8)) >"$pages"
err=$("$QU_BIN" --pid "$VM_PID" --allow-copy --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "share=off, --allow-copy, 8 free pages: exit $rc: $err"
[ "$rc" = 3 ] && grep -q "2048 KiB huge pages (mem-path on hugetlbfs): its copy needs 64 free 2048 KiB pages and the host has 8 (a copy never moves it onto normal pages)" <<<"$err"
tap_ok $? "too few free huge pages: the copy is refused with both numbers"
echo $((old_pages + want)) >"$pages"
old=$VM_PID
vm_upgrade --allow-copy
tap_diag "copy: $REPORT $(cat "$VM_DIR/err")"
[ "$(json_get "$REPORT" result)" = upgraded ] && [ "$(json_get "$REPORT" strategy)" = stop-and-copy ] &&
	[ "$(json_get "$REPORT" ram_copied_bytes)" -ge $((16 << 20)) ] && [ "$VM_PID" != "$old" ]
tap_ok $? "share=off with --allow-copy: copied (at least the 16 MiB the guest writes; zero pages are not sent)"
tap_is "$(ram_pagesize "$VM_PID" /memfd:memory-backend-memfd)" 2048kB "the copy is on 2 MiB pages (a hugetlb memfd)"
vm_upgrade
tap_diag "after the copy: $REPORT"
[ "$(json_get "$REPORT" result)" = upgraded ] && [ "$(json_get "$REPORT" strategy)" = shared-ram-handover ] &&
	[ "$(json_get "$REPORT" ram_copied_bytes)" -lt 1048576 ] &&
	[ "$(ram_pagesize "$VM_PID" /memfd:memory-backend-memfd)" = 2048kB ]
tap_ok $? "the next upgrade hands the huge-page memfd over"
vm_memcheck_progress 60
tap_ok $? "the copied guest makes progress"
tap_is "$(vm_memcheck_errors)" 0 "the copied guest reports no corruption"

# Plain -m with -mem-path: copied into a huge-page backend (QEMU refuses -mem-path beside it).
VM_MEM=128M VM_MEMCHECK_MIB=16 VM_RAM=anon vm_start huge-mem-path -mem-path "$hugedir" || exit 1
vm_wait_ready || exit 1
vm_upgrade --allow-copy
tap_diag "-mem-path copy: $REPORT; page size $(ram_pagesize "$VM_PID" /memfd:memory-backend-memfd); $(tr '\0' ' ' <"/proc/$VM_PID/cmdline")"
[ "$(json_get "$REPORT" result)" = upgraded ] && [ "$(json_get "$REPORT" strategy)" = stop-and-copy ] &&
	[ "$(ram_pagesize "$VM_PID" /memfd:memory-backend-memfd)" = 2048kB ] &&
	! tr '\0' '\n' <"/proc/$VM_PID/cmdline" | grep -qx -- -mem-path
tap_ok $? "-mem-path: copied into 2 MiB pages, -mem-path gone from the new command line"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the -mem-path guest makes progress, no corruption"
# The mem-path directory exists only in the VM's private mount namespace (libvirt runs QEMU in
# one), and the VM is an unprivileged user's: the directory is looked at as that user, inside
# that QEMU's root. In the tool's namespace the path does not exist.
nsdir=$(mktemp -d)
chmod 755 "$nsdir"
_vm_paths+=("$nsdir")
nswrap=$(mktemp)
_vm_paths+=("$nswrap")
cat >"$nswrap" <<WRAP
#!/bin/sh
exec unshare -m --propagation private sh -c 'mount -t tmpfs none $nsdir && mkdir -m 755 $nsdir/huge &&
	mount -t hugetlbfs -o pagesize=2M,uid=65534 none $nsdir/huge &&
	exec setpriv --reuid=65534 --regid=65534 --clear-groups "\$@"' sh "\$@"
WRAP
chmod +x "$nswrap"
VM_OWNER=nobody VM_WRAP=$nswrap VM_MEM=128M VM_MEMCHECK_MIB=16 VM_RAM=anon vm_start huge-ns \
	-object "memory-backend-file,id=mem0,size=128M,mem-path=$nsdir/huge,share=on" -machine memory-backend=mem0 || exit 1
vm_wait_ready || exit 1
tap_diag "QEMU $VM_PID runs as uid $(awk '/^Uid:/ { print $2 }' "/proc/$VM_PID/status"); mount ns $(readlink "/proc/$VM_PID/ns/mnt") (ours $(readlink /proc/self/ns/mnt)); maps: $(awk -v d="$nsdir/" 'index($6, d) == 1 { print $5, $6; exit }' "/proc/$VM_PID/maps")"
[ "$(readlink "/proc/$VM_PID/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] && [ ! -e "$nsdir/huge" ]
tap_ok $? "the VM runs in a mount namespace of its own, its hugetlbfs directory not seen from ours"
before=$(awk -v d="$nsdir/" 'index($6, d) == 1 { print $5; exit }' "/proc/$VM_PID/maps")
old=$VM_PID
vm_upgrade
tap_diag "upgrade: $REPORT $(cat "$VM_DIR/err")"
[ "$(json_get "$REPORT" result)" = upgraded ] && [ "$(json_get "$REPORT" strategy)" = shared-ram-handover ] &&
	[ "$(json_get "$REPORT" ram_copied_bytes)" -lt 1048576 ] && [ "$VM_PID" != "$old" ] && [ -n "$before" ] &&
	[ "$(awk -v d="$nsdir/" 'index($6, d) == 1 { print $5; exit }' "/proc/$VM_PID/maps")" = "$before" ]
tap_ok $? "handed over from the VM's own namespace: the same hugetlbfs file (inode $before), nothing copied"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the namespaced guest makes progress, no corruption"
tap_done
