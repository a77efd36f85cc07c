#!/usr/bin/env bash
# A VM written the way libvirt 9.0 writes one, upgraded 7.2 -> 10.0 -> 10.0: JSON -object
# (memfd RAM, an iothread, an RNG), JSON -device and -blockdev (a raw disk), a JSON tap
# -netdev whose descriptor the starter passed (tapopen stands in for libvirtd), the monitor
# and serial as key=value chardevs (libvirt has no JSON -chardev: QEMU takes none), not
# daemonized, its monitor a listening socket passed as fd=N (listenfd.py stands in for libvirtd),
# under libvirt's full -sandbox, as an unprivileged user. Before each upgrade a
# descriptor set is added at run time with QMP add-fd (SCM_RIGHTS, as libvirt hot-plugs a
# disk) and a block node writes through /dev/fdset/N; a dry run names the set's member as
# query-fdsets does; after the upgrade the new QEMU has each
# set at the same number with the same opaque, and a node opened there writes into the same
# file through the carried descriptor. The sandbox is the old one's; the guest stays clean.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 20
vm_qemu10
vm_guest_build || exit 1
tapopen=$QU_BUILD/tests/helpers/tapopen
qmpfd=$QU_ROOT/tests/helpers/qmpfd.py
listenfd=$QU_ROOT/tests/helpers/listenfd.py
[ -x "$tapopen" ] || { echo "Bail out! $tapopen is missing: run make units"; exit 1; }
ns=qu-lvf-$$
ip netns add "$ns" || { echo "Bail out! cannot create a network namespace"; exit 1; }
vm_defer "ip netns del $ns"
sandbox=on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny

dir=$(mktemp -d /tmp/vm-libvirt.XXXXXX) && dir=$(cd "$dir" && pwd) || exit 1
_vm_paths+=("$dir")
chown nobody "$dir" && chmod 755 "$dir"
truncate -s 16M "$dir/disk.img" && chown nobody "$dir/disk.img"
export VM_DIR=$dir VM_QMP=$dir/qmp.sock VM_SERIAL=$dir/serial.log
# Not daemonized (libvirt keeps QEMU in the foreground of its own fork): started in the
# background here; its PID is the one setsid execs into.
setsid ip netns exec "$ns" "$tapopen" tapl0 3 python3 "$listenfd" "$dir/qmp.sock" 4 65534 \
	setpriv --reuid=65534 --regid=65534 --clear-groups \
	/usr/bin/qemu-system-x86_64 -name guest=libvirt,debug-threads=on \
	-machine pc-q35-7.2,usb=off,dump-guest-core=off,memory-backend=pc.ram -accel tcg \
	-object '{"qom-type":"memory-backend-memfd","id":"pc.ram","share":true,"x-use-canonical-path-for-ramblock-id":false,"size":268435456}' \
	-m size=262144k -overcommit mem-lock=off -smp 1,sockets=1,cores=1,threads=1 \
	-object '{"qom-type":"iothread","id":"iothread1"}' -display none -no-user-config -nodefaults \
	-chardev socket,id=charmonitor,fd=4,server=on,wait=off \
	-mon chardev=charmonitor,id=monitor,mode=control -rtc base=utc -no-shutdown -boot strict=on \
	-kernel "$VM_KERNEL" -initrd "$VM_INITRD" \
	-append "$VM_CMDLINE memcheck_mib=32 net_ip=10.0.7.15/24" \
	-blockdev "{\"driver\":\"file\",\"filename\":\"$dir/disk.img\",\"node-name\":\"libvirt-1-storage\",\"auto-read-only\":true,\"discard\":\"unmap\"}" \
	-blockdev '{"node-name":"libvirt-1-format","read-only":false,"driver":"raw","file":"libvirt-1-storage"}' \
	-device '{"driver":"virtio-blk-pci","bus":"pcie.0","addr":"0x4","drive":"libvirt-1-format","id":"virtio-disk0","bootindex":1}' \
	-netdev '{"type":"tap","fd":"3","id":"hostnet0"}' \
	-device '{"driver":"virtio-net-pci","netdev":"hostnet0","id":"net0","mac":"52:54:00:00:07:15","bus":"pcie.0","addr":"0x3"}' \
	-chardev "file,id=charserial0,path=$dir/serial.log" \
	-device '{"driver":"isa-serial","chardev":"charserial0","id":"serial0","index":0}' \
	-object '{"qom-type":"rng-random","id":"objrng0","filename":"/dev/urandom"}' \
	-device '{"driver":"virtio-rng-pci","rng":"objrng0","id":"rng0","bus":"pcie.0","addr":"0x5"}' \
	-sandbox "$sandbox" -msg timestamp=on -pidfile "$dir/qemu.pid" \
	</dev/null >"$dir/qemu.out" 2>"$dir/qemu.err" &
first=$!
disown "$first" # retired by the tool with SIGKILL: no job report on stderr
for _ in $(seq 300); do [ -s "$dir/qemu.pid" ] && break; kill -0 "$first" 2>/dev/null || break; sleep 0.1; done
VM_PID=$(cat "$dir/qemu.pid" 2>/dev/null)
[ "$VM_PID" = "$first" ] && vm_track_pid "$VM_PID" ||
	{ echo "Bail out! the libvirt-style QEMU did not start: $(cat "$dir/qemu.err")"; exit 1; }
export VM_PID
vm_wait_ready || { echo "Bail out! the guest did not come up; QEMU said: $(cat "$dir/qemu.err")"; exit 1; }
grep -q 'Seccomp:[[:space:]]*2' "/proc/$VM_PID/status"
tap_ok $? "the old QEMU runs under its own sandbox, not daemonized (parent $(ps -o ppid= -p "$VM_PID" | tr -d ' '))"

# blockdev_add SET NODE: QMP that opens /dev/fdset/SET as block node NODE, as a hot-plugged
# disk's node. qemu_io NODE PATTERN OFFSET: HMP qemu-io writing 4 KiB of PATTERN at OFFSET
# through it.
blockdev_add() { echo "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"file\",\"node-name\":\"$2\",\"filename\":\"/dev/fdset/$1\",\"locking\":\"off\"}}"; }
qemu_io() { echo "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"qemu-io $1 \\\"write -P $2 $3 4k\\\"\"}}"; }
# answered_all TEXT: every QMP answer in TEXT is a return, and HMP said nothing (no error).
answered_all() { ! grep -qv '"return"' <<<"$1" && ! grep -q '"return": "[^"]' <<<"$1"; }

# bytes_at FILE OFFSET: the distinct bytes of the 4 KiB at OFFSET, in hex.
bytes_at() { od -An -v -tx1 -j "$2" -N 4096 "$1" | tr -s ' \n' '\n\n' | sed '/^$/d' | sort -u | tr '\n' ' '; }
fdsets() { vm_qmp "$VM_QMP" '{"execute":"query-fdsets"}'; }

declare -A file
hops=("7.2 -> 10.0" "10.0 -> 10.0")
for k in 0 1; do
	hop=${hops[$k]} set=$((7 + k))
	file[$set]=$dir/fdset$set.img
	truncate -s 1M "${file[$set]}"
	r=$(python3 "$qmpfd" "$VM_QMP" "${file[$set]}" rw "$set" "libvirt-$set-storage" \
		"$(blockdev_add "$set" "hot$set")" "$(qemu_io "hot$set" 0x1$k 0)")
	answered_all "$r" && [ "$(bytes_at "${file[$set]}" 0)" = "1$k " ]
	tap_ok $? "$hop: a set added at run time (add-fd) is written through /dev/fdset/$set by a hot-added node ($(tr '\n' ' ' <<<"$r"))"
	member=$(head -n 1 <<<"$r" | jq -r .return.fd)
	plan=$("$QU_BIN" --pid "$VM_PID" --new-binary "$Q10" --dry-run --json --quiet 2>/dev/null)
	jq -e --argjson fd "$member" --arg s "descriptor set $set member" '[.descriptors[] | select(.kind == "fdset" and .old_fd == $fd
		and (.what | startswith($s)) and (.what | contains("added at run time")))] | length == 1' <<<"$plan" >/dev/null
	tap_ok $? "$hop: a dry run carries the set's member, fd $member of the old QEMU ($(jq -c '[.descriptors[] | select(.kind == "fdset")]' <<<"$plan"))"
	old=$VM_PID
	vm_upgrade --new-binary "$Q10"
	tap_diag "$hop: $REPORT $(tail -n 3 "$VM_DIR/err" | tr '\n' ' ')"
	[ "$(json_get "$REPORT" result)" = upgraded ] && [ "$VM_PID" != "$old" ] && [ "$(readlink "/proc/$VM_PID/exe")" = "$Q10" ]
	tap_ok $? "$hop: upgraded, the VM runs on QEMU 10.0 (PID $VM_PID)"
	cmd=$(tr '\0' '\n' <"/proc/$VM_PID/cmdline")
	want=""
	for s in $(seq 7 "$set"); do want+="set=$s,fd=N,opaque=libvirt-$s-storage "; done
	got=$(sed -n '/^-add-fd$/{n;p}' <<<"$cmd" | sed 's/fd=[0-9]*/fd=N/' | sort | tr '\n' ' ')
	tap_is "$got" "$want" "$hop: the new QEMU gets every set added at run time as -add-fd, with its opaque"
	q=$(fdsets)
	ok=1
	for s in $(seq 7 "$set"); do
		jq -e --argjson s "$s" '.return[] | select(."fdset-id" == $s) | .fds | length == 1 and .[0].opaque == "libvirt-\($s)-storage"' <<<"$q" >/dev/null || ok=0
	done
	[ $ok = 1 ]
	tap_ok $? "$hop: query-fdsets in the new QEMU lists the same sets and opaques ($q)"
	r=$(vm_qmp "$VM_QMP" "$(blockdev_add "$set" "after$set")")$'\n'$(vm_qmp "$VM_QMP" "$(qemu_io "after$set" 0x2$k 4096)")
	answered_all "$r" && [ "$(bytes_at "${file[$set]}" 0)" = "1$k " ] &&
		[ "$(bytes_at "${file[$set]}" 4096)" = "2$k " ]
	tap_ok $? "$hop: the new QEMU writes into the same file through the carried /dev/fdset/$set ($(bytes_at "${file[$set]}" 0)/ $(bytes_at "${file[$set]}" 4096); $(tr '\n' ' ' <<<"$r"))"
	sb=$(sed -n '/^-sandbox$/{n;p}' <<<"$cmd")
	tap_is "$sb" "$sandbox" "$hop: the new QEMU has the old one's -sandbox"
	grep -q 'Seccomp:[[:space:]]*2' "/proc/$VM_PID/status"
	tap_ok $? "$hop: and runs under it ($(grep -E '^(NoNewPrivs|Seccomp)' "/proc/$VM_PID/status" | tr -s '\t\n' '  '))"
	nd=$(sed -n '/^-netdev$/{n;p}' <<<"$cmd")
	[ "$(jq -c 'del(.fd)' <<<"$nd")" = '{"type":"tap","id":"hostnet0"}' ]
	tap_ok $? "$hop: the tap stays a JSON -netdev ($nd)"
done
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest keeps running without memory errors ($(vm_memcheck_status))"
tap_done
