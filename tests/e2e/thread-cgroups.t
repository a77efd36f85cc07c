#!/usr/bin/env bash
# Per-thread cgroups are carried, as libvirt lays them out: the VM's process in a cgroup of
# its own, each vCPU thread (and the I/O thread) in a child of it, in a v1 hierarchy (cpu:
# a directory joined through "tasks") and in v2 (threaded children, "cgroup.threads"; the I/O
# thread only in v1, so that a thread that differs in one hierarchy only is covered). After
# each of two upgrades every new thread is where the old thread of the same name was, the
# others stay in the process's cgroup, and the guest is clean.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

v1=/sys/fs/cgroup/cpu v2=/sys/fs/cgroup/unified name=qu-tcg-$$
if [ ! -e "$v1/tasks" ] || [ ! -e "$v2/cgroup.threads" ]; then
	echo "1..0 # SKIP needs the v1 cpu hierarchy at $v1 and cgroup v2 at $v2"
	exit 0
fi
tap_plan 8
threaded=(vcpu0 vcpu1) all=(vcpu0 vcpu1 iothread1)

# Removes the cgroups once the VMs are gone; anything still in them (a QEMU that did not die)
# is moved to the root first, or rmdir would fail.
cg_remove() {
	local d p
	for d in "${all[@]/#/$v1/$name/}" "$v1/$name" "${threaded[@]/#/$v2/$name/}" "$v2/$name"; do
		[ -d "$d" ] || continue
		for p in $(cat "$d/tasks" "$d/cgroup.procs" 2>/dev/null); do
			echo "$p" >"${d%%/$name*}/cgroup.procs" 2>/dev/null
		done
		rmdir "$d" || echo "# cannot remove $d" >&2
	done
}
vm_defer cg_remove
mkdir "$v1/$name" "$v2/$name" || { echo "Bail out! cannot make the test's cgroups"; exit 1; }
for c in "${all[@]}"; do mkdir "$v1/$name/$c" || exit 1; done

VM_SMP=2 vm_start thread-cgroups -name tcg,debug-threads=on -object iothread,id=iothread1 || exit 1
vm_wait_ready || exit 1
echo "$VM_PID" >"$v1/$name/cgroup.procs" && echo "$VM_PID" >"$v2/$name/cgroup.procs" || exit 1
for c in "${threaded[@]}"; do
	mkdir "$v2/$name/$c" && echo threaded >"$v2/$name/$c/cgroup.type" || exit 1
done

# tid PID NAME: the TID of PID's thread named NAME.
tid() { grep -lx "$2" /proc/"$1"/task/*/comm | head -n 1 | cut -d/ -f5; }
# where PID NAME: that thread's cgroups in the two hierarchies, "cpu:PATH v2:PATH".
where() {
	local t
	t=$(tid "$1" "$2") && [ -n "$t" ] || { echo "no thread '$2'"; return; }
	echo "cpu:$(sed -n 's/^[0-9]*:cpu://p' "/proc/$1/task/$t/cgroup") v2:$(sed -n 's/^0:://p' "/proc/$1/task/$t/cgroup")"
}
echo "$(tid "$VM_PID" 'CPU 0/TCG')" >"$v1/$name/vcpu0/tasks" &&
	echo "$(tid "$VM_PID" 'CPU 0/TCG')" >"$v2/$name/vcpu0/cgroup.threads" &&
	echo "$(tid "$VM_PID" 'CPU 1/TCG')" >"$v1/$name/vcpu1/tasks" &&
	echo "$(tid "$VM_PID" 'CPU 1/TCG')" >"$v2/$name/vcpu1/cgroup.threads" &&
	echo "$(tid "$VM_PID" 'IO iothread1')" >"$v1/$name/iothread1/tasks"
tap_ok $? "the vCPU threads and the I/O thread moved into cgroups of their own"

want=("CPU 0/TCG=cpu:/$name/vcpu0 v2:/$name/vcpu0" "CPU 1/TCG=cpu:/$name/vcpu1 v2:/$name/vcpu1"
	"IO iothread1=cpu:/$name/iothread1 v2:/$name")
# placed PID: every thread of want is where it should be, and every other thread (main,
# call_rcu, workers: named or not) in the VM's own cgroups (says which is not).
placed() {
	local w got ok=0 t n others=0
	for w in "${want[@]}"; do
		got=$(where "$1" "${w%%=*}")
		[ "$got" = "${w#*=}" ] || { tap_diag "PID $1 '${w%%=*}': in '$got', want '${w#*=}'"; ok=1; }
	done
	for t in /proc/"$1"/task/*; do
		n=$(cat "$t/comm" 2>/dev/null) || continue
		case $n in "CPU 0/TCG" | "CPU 1/TCG" | "IO iothread1") continue ;; esac
		others=$((others + 1))
		got="cpu:$(sed -n 's/^[0-9]*:cpu://p' "$t/cgroup") v2:$(sed -n 's/^0:://p' "$t/cgroup")"
		[ "$got" = "cpu:/$name v2:/$name" ] || { tap_diag "PID $1 thread ${t##*/} '$n': in '$got'"; ok=1; }
	done
	[ "$others" -gt 0 ] || { tap_diag "PID $1: no thread besides the vCPUs and the I/O thread"; ok=1; }
	return $ok
}
placed "$VM_PID"
tap_ok $? "the old QEMU's threads are where libvirt would put them"

for round in 1 2; do
	old=$VM_PID
	vm_upgrade
	tap_diag "round $round: $(json_get "$REPORT" result) $(json_get "$REPORT" error) $(cat "$VM_DIR/err")"
	[ "$(json_get "$REPORT" result)" = upgraded ] && [ "$VM_PID" != "$old" ]
	tap_ok $? "round $round: upgraded"
	placed "$VM_PID"
	tap_ok $? "round $round: each new vCPU and I/O thread is in the cgroups of the old thread of its name, the others in the VM's"
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ] && [ "$(vm_runstate)" = running ]
	tap_ok $? "round $round: guest clean and running"
done
tap_done
