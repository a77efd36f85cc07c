#!/usr/bin/env bash
# The process context is reproduced for the new QEMU: a VM run as an unprivileged user (as
# libvirt runs QEMU), in cgroups of its own (v1 memory and cpu, and v2), pinned to one CPU
# with its vCPU thread pinned elsewhere, niced, with its own oom_score_adj and descriptor
# limit, with CAP_NET_ADMIN as an ambient capability. After two upgrades the new QEMU has all of it, and the guest is clean.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/cgroup.sh"

tap_plan 7
cg_all_new qu-test
cg=qu-test-$$
# How a management daemon would start it: cgroups first, then the identity and limits.
wrap=$(mktemp)
_vm_paths+=("$wrap")
{
	echo '#!/bin/sh'
	for d in "${CGDIRS[@]}"; do echo "echo \$\$ >$d/cgroup.procs"; done
	echo 'exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=+net_admin --ambient-caps=+net_admin nice -n 5 taskset -c 0 prlimit --nofile=2048:4096 "$@"'
} >"$wrap"
chmod +x "$wrap"
VM_OWNER=nobody VM_WRAP=$wrap vm_start context -name context,debug-threads=on || exit 1
vm_wait_ready || exit 1
echo 200 >"/proc/$VM_PID/oom_score_adj"
vcpu=$(grep -l '^CPU 0/' /proc/"$VM_PID"/task/*/comm | head -n 1 | cut -d/ -f5)
[ -n "$vcpu" ] && taskset -pc 1 "$vcpu" >/dev/null

# facts PID: the context, one line each, to compare old and new.
facts() {
	local p=$1 t
	grep -E '^(Uid|Gid|Groups|Umask|Cpus_allowed_list|Cap(Inh|Prm|Eff|Amb|Bnd)):' "/proc/$p/status" | tr -s '\t' ' '
	echo "cgroup $(sort "/proc/$p/cgroup" | tr '\n' ' ')"
	echo "nice $(ps -o ni= -p "$p" | tr -d ' ')"
	echo "oom_score_adj $(cat "/proc/$p/oom_score_adj")"
	grep 'Max open files' "/proc/$p/limits" | tr -s ' '
	t=$(grep -l '^CPU 0/' /proc/"$p"/task/*/comm | head -n 1 | cut -d/ -f5)
	echo "vcpu0 $(taskset -pc "$t" | sed 's/.*: //')"
}
before=$(facts "$VM_PID")
tap_diag "old QEMU: $(tr '\n' '|' <<<"$before")"
# nice -n 5 adds to the niceness the test itself runs at (a suite run under nice).
want_nice=$(($(ps -o ni= -p $$) + 5))
[ "$want_nice" -gt 19 ] && want_nice=19
grep -q '^Uid: 65534' <<<"$before" && grep -q '^CapAmb: 0000000000001000' <<<"$before" && grep -q "cgroup.*$cg" <<<"$before" && grep -q "^nice $want_nice\$" <<<"$before" &&
	grep -q '^vcpu0 1$' <<<"$before" && grep -q 'Cpus_allowed_list: 0$' <<<"$before"
tap_ok $? "the VM runs as nobody with CAP_NET_ADMIN ambient, in its cgroups, niced, pinned, vCPU thread on CPU 1"

for round in 1 2; do
	old=$VM_PID
	vm_upgrade
	report=$REPORT
	tap_diag "round $round: $(json_get "$report" result) $(json_get "$report" error) $(cat "$VM_DIR/err")"
	[ "$(json_get "$report" result)" = upgraded ] && [ "$VM_PID" != "$old" ]
	tap_ok $? "round $round: upgraded"
	after=$(facts "$VM_PID")
	for what in Uid Gid Groups Umask Cpus_allowed_list CapInh CapPrm CapEff CapAmb CapBnd cgroup nice oom_score_adj 'Max open files' vcpu0; do
		[ "$(grep "^$what" <<<"$before")" = "$(grep "^$what" <<<"$after")" ] ||
			{ tap_diag "round $round: $what: was '$(grep "^$what" <<<"$before")', now '$(grep "^$what" <<<"$after")'"; false; }
	done
	tap_ok $? "round $round: user, groups, umask, capabilities, cgroups, affinity, nice, oom_score_adj, limits and vCPU affinity carried"
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ] && [ "$(vm_runstate)" = running ]
	tap_ok $? "round $round: guest clean and running"
done
tap_done
