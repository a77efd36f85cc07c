#!/usr/bin/env bash
# The new QEMU keeps the old one's confinement. A VM runs as nobody under no_new_privs in a
# mount namespace of its own, with its console log on a tmpfs mounted only there; another runs
# in a user namespace of its own (root there, uid 100000 here) with its own mounts. After two
# upgrades each new QEMU is in the very same namespaces, with no_new_privs, the same user as
# the host sees it and as its namespace sees it, and the same capabilities; the private log
# goes on growing where only that namespace sees it; the guests are clean.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 9
base=$(mktemp -d)
_vm_paths+=("$base")
chmod 755 "$base"

# facts PID: what confines it, one line each, to compare old and new.
facts() {
	local p=$1 ns
	grep -E '^(Uid|Gid|Groups|NoNewPrivs|Seccomp|Cap(Inh|Prm|Eff|Amb|Bnd)):' "/proc/$p/status" | tr -s '\t' ' '
	for ns in mnt user pid ipc uts net cgroup; do echo "ns $ns $(readlink "/proc/$p/ns/$ns")"; done
	echo "root $(stat -L -c '%d:%i' "/proc/$p/root")"
	echo "uid_map $(tr -s ' ' <"/proc/$p/uid_map" | tr '\n' ' ')"
}

# compare ROUND: every fact of the old QEMU (saved in $before) holds for the new one.
compare() {
	local after what ok=0
	after=$(facts "$VM_PID")
	while IFS= read -r what; do
		grep -qxF "$what" <<<"$after" || { tap_diag "$1: was '$what'; now: $(grep "^${what%% *}" <<<"$after" | head -n 1)"; ok=1; }
	done <<<"$before"
	return $ok
}

# upgrade_twice NAME PRIVATE_LOG: two upgrades, each checked.
upgrade_twice() {
	local name=$1 plog=$2 round old size
	for round in 1 2; do
		old=$VM_PID
		size=$(stat -c %s "/proc/$old/root$plog")
		vm_upgrade
		tap_diag "$name round $round: $(json_get "$REPORT" result) $(json_get "$REPORT" error) $(tail -n 2 "$VM_DIR/err" | tr '\n' ' ')"
		[ "$(json_get "$REPORT" result)" = upgraded ] && [ "$VM_PID" != "$old" ] && compare "$name round $round"
		tap_ok $? "$name, round $round: upgraded; namespaces, no_new_privs, user and capabilities as before"
	done
	# The guest writes on its second serial port only when asked; QEMU reopened the log in the
	# namespace's tmpfs (append): it is there, and not on the host.
	[ -f "/proc/$VM_PID/root$plog" ] && [ ! -e "$plog" ] && vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
	tap_ok $? "$name: the private log is in the namespace only; the guest makes progress, clean"
}

# 1. nobody, no_new_privs, its own mount namespace with a private tmpfs.
priv=$base/priv
mkdir "$priv"
wrap=$base/wrap-mnt
cat >"$wrap" <<EOF
#!/bin/sh
exec unshare -m --propagation private sh -c 'mount -t tmpfs -o mode=0777 qu-priv "$priv" && exec setpriv --no-new-privs --reuid=65534 --regid=65534 --clear-groups "\$@"' sh "\$@"
EOF
chmod +x "$wrap"
VM_OWNER=nobody VM_WRAP=$wrap vm_start trustmnt -chardev "file,id=priv,path=$priv/private.log" -device isa-serial,chardev=priv || exit 1
vm_wait_ready || exit 1
before=$(facts "$VM_PID")
tap_diag "old QEMU: $(tr '\n' '|' <<<"$before")"
grep -q '^NoNewPrivs: 1' <<<"$before" && [ "$(readlink "/proc/$VM_PID/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] &&
	[ -f "/proc/$VM_PID/root$priv/private.log" ] && [ ! -e "$priv/private.log" ]
tap_ok $? "mount namespace VM: nobody, no_new_privs, its own mounts (the private log exists only there)"
upgrade_twice "mount namespace VM" "$priv/private.log"
mnt_qmp=$VM_QMP

# 2. Root in a user namespace of its own (uid 0 there is 100000 here), with its own mounts: as
# a rootless container starts it, uid 100000 making the namespace and mapping itself to root.
priv2=$base/priv2
mkdir "$priv2"
wrap=$base/wrap-user
cat >"$wrap" <<EOF
#!/bin/sh
exec setpriv --reuid=100000 --regid=100000 --clear-groups unshare -U -r -m --propagation private sh -c 'mount -t tmpfs qu-priv2 "$priv2" && exec "\$@"' sh "\$@"
EOF
chmod +x "$wrap"
VM_OWNER=100000:100000 VM_WRAP=$wrap vm_start trustuser -chardev "file,id=priv,path=$priv2/private.log" -device isa-serial,chardev=priv || exit 1
vm_wait_ready || exit 1
before=$(facts "$VM_PID")
tap_diag "old QEMU: $(tr '\n' '|' <<<"$before")"
grep -q '^Uid: 100000' <<<"$before" && grep -q '^uid_map *0 100000 1' <<<"$before" &&
	[ "$(readlink "/proc/$VM_PID/ns/user")" != "$(readlink /proc/self/ns/user)" ] && [ -f "/proc/$VM_PID/root$priv2/private.log" ]
tap_ok $? "user namespace VM: root there, uid 100000 here, its own mounts"
upgrade_twice "user namespace VM" "$priv2/private.log"

[ "$(vm_runstate "$mnt_qmp")" = running ] && [ "$(vm_runstate)" = running ]
tap_ok $? "both VMs still run"
tap_done
