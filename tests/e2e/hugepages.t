#!/usr/bin/env bash
# Guest RAM on 2 MiB huge pages given as a mem-path directory on hugetlbfs (Proxmox's
# `hugepages:`, libvirt's <hugepages/>): QEMU makes an unlinked file in the directory and keeps
# it open. With share=on that file is handed over like a memfd: nothing is copied, and the new
# QEMU maps the same file, still on huge pages. With share=off the RAM is copied (with
# --allow-copy) into a memfd on huge pages of the same size, never onto normal pages, and is
# handed over from then on; without enough free huge pages the copy is refused and says so.
# libvirt's own form (<memoryBacking><hugepages/><access mode='shared'/>: a JSON -object with
# mem-path a per-domain directory, prealloc, started as libvirt starts QEMU) is handed over
# the same way.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

want=512 # 128 for the 256 MiB guest; 64 for each 128 MiB one, 64 for each copy
vm_hugepages_add $want
case $? in
0) ;;
1) echo "1..0 # SKIP $HUGE_WHY"; exit 0 ;;
*) printf '1..1\nnot ok 1 - huge pages reserved: %s\n' "$HUGE_WHY"; exit 1 ;;
esac
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

tap_plan 27
vm_qemu10
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
# Take the pool's free pages away but 8: the copy must not fall back to normal pages (this test
# holds the machine's huge-page lock: no other test's pages go with them).
full=$(cat /proc/sys/vm/nr_hugepages)
free=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages)
resv=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages)
echo $((full - (free - resv) + 8)) >/proc/sys/vm/nr_hugepages
err=$("$QU_BIN" --pid "$VM_PID" --allow-copy --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "share=off, --allow-copy, 8 free pages: exit $rc: $err"
[ "$rc" = 3 ] && grep -q "2048 KiB huge pages (mem-path on hugetlbfs): its copy needs 64 free 2048 KiB pages and the host has 8 (a copy never moves it onto normal pages)" <<<"$err"
tap_ok $? "too few free huge pages: the copy is refused with both numbers"
echo "$full" >/proc/sys/vm/nr_hugepages
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
vm_stop

# libvirt's form, as libvirt 9.0 writes it for <hugepages/> with shared access: a JSON -object
# named pc.ram, mem-path the domain's directory under the hugetlbfs mount (made by libvirt,
# given to its qemu user), prealloc; QEMU not daemonized, its monitor a listening socket
# passed as fd=N (listenfd.py stands in for libvirtd), an unprivileged user, libvirt's
# -sandbox, -pidfile (as libvirt-forms.t starts libvirt's command lines).
lvdir=$(mktemp -d /tmp/vm-lvhuge.XXXXXX) && lvdir=$(cd "$lvdir" && pwd) || exit 1
_vm_paths+=("$lvdir")
chown nobody "$lvdir" && chmod 755 "$lvdir"
lvmem=$hugedir/libvirt/qemu/1-lvhuge
mkdir -p "$lvmem" && chown nobody "$lvmem" && chmod 750 "$lvmem" || { echo "Bail out! cannot make $lvmem"; exit 1; }
export VM_DIR=$lvdir VM_QMP=$lvdir/qmp.sock VM_SERIAL=$lvdir/serial.log
setsid python3 "$QU_ROOT/tests/helpers/listenfd.py" "$VM_QMP" 4 65534 \
	setpriv --reuid=65534 --regid=65534 --clear-groups \
	/usr/bin/qemu-system-x86_64 -name guest=lvhuge,debug-threads=on \
	-machine pc-q35-7.2,usb=off,dump-guest-core=off,memory-backend=pc.ram -accel tcg \
	-object "{\"qom-type\":\"memory-backend-file\",\"id\":\"pc.ram\",\"mem-path\":\"$lvmem\",\"share\":true,\"x-use-canonical-path-for-ramblock-id\":false,\"prealloc\":true,\"size\":134217728}" \
	-m size=131072k -overcommit mem-lock=off -smp 1,sockets=1,cores=1,threads=1 \
	-display none -no-user-config -nodefaults \
	-chardev socket,id=charmonitor,fd=4,server=on,wait=off \
	-mon chardev=charmonitor,id=monitor,mode=control -rtc base=utc -no-shutdown -boot strict=on \
	-kernel "$VM_KERNEL" -initrd "$VM_INITRD" -append "$VM_CMDLINE memcheck_mib=16" \
	-chardev "file,id=charserial0,path=$VM_SERIAL" \
	-device '{"driver":"isa-serial","chardev":"charserial0","id":"serial0","index":0}' \
	-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny \
	-msg timestamp=on -pidfile "$lvdir/qemu.pid" </dev/null >"$lvdir/qemu.out" 2>"$lvdir/qemu.err" &
first=$!
disown "$first" # retired by the tool with SIGKILL: no job report on stderr
for _ in $(seq 300); do [ -s "$lvdir/qemu.pid" ] && break; kill -0 "$first" 2>/dev/null || break; sleep 0.1; done
VM_PID=$(cat "$lvdir/qemu.pid" 2>/dev/null)
[ "$VM_PID" = "$first" ] && vm_track_pid "$VM_PID" ||
	{ echo "Bail out! the libvirt-style QEMU did not start: $(cat "$lvdir/qemu.err")"; exit 1; }
export VM_PID
vm_wait_ready || { echo "Bail out! the guest did not come up; QEMU said: $(cat "$lvdir/qemu.err")"; exit 1; }
# The maps line of the unlinked file QEMU made in the domain's directory: "inode path".
lv_ram() { awk -v d="$lvmem/qemu_back_mem.pc.ram." 'index($6, d) == 1 { print $5, $6, $7; exit }' "/proc/$1/maps"; }
# Huge pages the file holds (hugetlbfs counts them in its blocks), through PID $1's descriptor
# of it: all of them stay allocated, whoever maps them.
lv_file_kb() {
	local f
	for f in /proc/"$1"/fd/*; do
		case $(readlink "$f") in "$lvmem/qemu_back_mem.pc.ram."*) echo $(($(stat -L -c '%b * %B' "$f") / 1024)); return ;; esac
	done
}
# Huge pages PID $1's mapping of it holds now, from smaps: Private_Hugetlb while one process
# maps them (even MAP_SHARED), Shared_Hugetlb when more do. The new QEMU has no prealloc (the
# memory is there already: the rewriter drops it), so it maps pages as the guest touches them.
lv_huge_kb() {
	awk -v d="$lvmem/qemu_back_mem.pc.ram." '/^[0-9a-f]+-/ { if (on) exit; on = index($6, d) == 1; next }
		on && /^(Shared|Private)_Hugetlb:/ { kb += $2 } END { print kb + 0 }' "/proc/$1/smaps"
}
before=$(lv_ram "$VM_PID")
tap_diag "libvirt form: QEMU $VM_PID maps $before; $(lv_huge_kb "$VM_PID") kB hugetlb mapped, $(lv_file_kb "$VM_PID") kB in the file; $(grep -E '^HugePages_(Total|Free)' /proc/meminfo | tr -s ' \n' ' ')"
[ -n "$before" ] && [ "${before##* }" = "(deleted)" ] && [ "$(ram_pagesize "$VM_PID" "$lvmem/")" = 2048kB ] &&
	[ "$(lv_huge_kb "$VM_PID")" = 131072 ] && [ "$(lv_file_kb "$VM_PID")" = 131072 ]
tap_ok $? "libvirt's JSON form: QEMU made an unlinked file in the domain's hugetlbfs directory, all 128 MiB preallocated on 2 MiB pages"
plan=$("$QU_BIN" inspect --pid "$VM_PID" --json --quiet 2>&1)
tap_diag "plan: $(jq -c '{strategy,ram:[.descriptors[] | select(.kind == "ram")]}' <<<"$plan" 2>/dev/null || echo "$plan")"
[ "$(json_get "$plan" strategy)" = shared-ram-handover ] &&
	jq -e '.descriptors[] | select(.kind == "ram" and (.what | test("pc.ram")) and (.what | test("memory-backend-file")))' <<<"$plan" >/dev/null
tap_ok $? "libvirt's JSON form: the plan hands pc.ram's open file over"
free_before=$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)
for hop in "7.2 -> 10.0" "10.0 -> 10.0"; do
	old=$VM_PID
	vm_upgrade --new-binary "$Q10"
	after=$(lv_ram "$VM_PID")
	# The running guest maps its pages into the new QEMU as it touches them: for 30 s at most.
	end=$((SECONDS + 30))
	until [ "$(lv_huge_kb "$VM_PID")" -gt 0 ] || [ $SECONDS -ge $end ]; do sleep 0.1; done
	tap_diag "libvirt form, $hop: $REPORT $(tail -n 3 "$VM_DIR/err" | tr '\n' ' '); new QEMU $VM_PID maps $after, $(lv_huge_kb "$VM_PID") kB hugetlb mapped, $(lv_file_kb "$VM_PID") kB in the file; -object $(tr '\0' '\n' <"/proc/$VM_PID/cmdline" | grep -E '(id=|"id":")pc.ram' | head -n 1)"
	[ "$(json_get "$REPORT" result)" = upgraded ] && [ "$(json_get "$REPORT" strategy)" = shared-ram-handover ] &&
		[ "$(json_get "$REPORT" ram_copied_bytes)" -lt 1048576 ] && [ "$VM_PID" != "$old" ] &&
		[ "$(readlink "/proc/$VM_PID/exe")" = "$Q10" ] && [ "${after%% *}" = "${before%% *}" ]
	tap_ok $? "libvirt's JSON form, $hop: handed over (under 1 MiB sent), the new QEMU maps the same file (inode ${before%% *})"
	[ "$(ram_pagesize "$VM_PID" "$lvmem/")" = 2048kB ] && [ "$(lv_huge_kb "$VM_PID")" -gt 0 ] &&
		[ "$(lv_file_kb "$VM_PID")" = 131072 ]
	tap_ok $? "libvirt's JSON form, $hop: the new QEMU maps the guest's RAM on 2 MiB pages ($(lv_huge_kb "$VM_PID") kB touched so far), all 128 MiB still huge pages in the file"
done
# The same pages throughout: no second copy was ever allocated in the pool. Other tests may
# take huge pages meanwhile (fewer free), none can have given ours back (more free).
free_after=$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)
tap_diag "HugePages_Free: $free_before before the upgrades, $free_after after"
[ -n "$free_after" ] && [ "$free_after" -le "$free_before" ] && proc_gone_soon "$old"
tap_ok $? "libvirt's JSON form: the old QEMU gone, its pages not freed (the new QEMU holds them)"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "libvirt's JSON form: the guest makes progress, its memory checker clean ($(vm_memcheck_status))"
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
