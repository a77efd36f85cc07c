#!/usr/bin/env bash
# 7-tap.sh: a VM with a tap NIC (in a private network namespace), cpr-exec'd once per variant:
#   ifname  QEMU opens the tap itself (-netdev tap,ifname=cprx0,script=no,downscript=no)
#   ifname-as-fd  as ifname, but the new command line names the descriptor the old image
#           holds (-netdev tap,id=n0,fd=N, N from /proc/PID/fd)
#   fd      the tap is opened by the caller and inherited (-netdev tap,fd=30), as libvirt does
# Prints the tun descriptors in /proc/PID/fd and the interface's index before and after, and
# whether the new image runs. Needs build/tests/helpers/tapopen (make all).
. "$(dirname "$0")/lib.sh"
tapopen=$QU_BUILD/tests/helpers/tapopen
[ -x "$tapopen" ] || { echo "build $tapopen first (make all)"; exit 1; }
ns=cprx-$$
ip netns add "$ns" || exit 1
vm_defer "ip netns del $ns"
tunfds() { for f in /proc/"$1"/fd/*; do [ "$(readlink "$f")" = /dev/net/tun ] && printf '%s ' "${f##*/}"; done; }
for variant in ${*:-ifname ifname-as-fd fd}; do
	case $variant in
	ifname | ifname-as-fd) VM_WRAP="ip netns exec $ns" probe_start "tap-$variant" \
		-netdev tap,id=n0,ifname=cprx0,script=no,downscript=no -device virtio-net-pci,netdev=n0
		ifc=cprx0 ;;
	fd) VM_WRAP="ip netns exec $ns $tapopen cprx1 30" probe_start "tap-$variant" \
		-netdev tap,id=n0,fd=30 -device virtio-net-pci,netdev=n0
		ifc=cprx1 ;;
	esac
	before="tun fds: $(tunfds "$VM_PID")ifindex $(ip -n "$ns" -o link show "$ifc" | cut -d: -f1)"
	probe_new_argv "$VM_PID" "file:$VM_DIR/vm.state"
	[ "$variant" = ifname-as-fd ] && NEW_ARGV=("${NEW_ARGV[@]/#tap,id=n0,ifname=cprx0,*/tap,id=n0,fd=$(tunfds "$VM_PID" | tr -d ' ')}")
	probe_wrap_stderr "$VM_DIR/new.err"
	python3 "$probe_dir/cprexec.py" "$VM_QMP" "file:$VM_DIR/vm.state" "$VM_QMP" 60 -- "${NEW_ARGV[@]}" >"$VM_DIR/log" 2>&1
	rc=$?
	if kill -0 "$VM_PID" 2>/dev/null; then
		after="tun fds: $(tunfds "$VM_PID")ifindex $(ip -n "$ns" -o link show "$ifc" 2>&1 | cut -d: -f1), run state $(vm_runstate)"
	else
		after="PID gone"
	fi
	echo "$variant: cprexec.py exit $rc; before: $before; after: $after"
	[ -s "$VM_DIR/new.err" ] && sed 's/^/  new image stderr: /' "$VM_DIR/new.err"
	vm_stop "$VM_PID"
done
