#!/usr/bin/env bash
# 6-outside-rollback.sh: after a cpr-exec whose new image died (/bin/false: the PID and the
# process's descriptors are gone), can the VM be brought back in a NEW process? The caller took
# a descriptor of the RAM memfd beforehand (here by opening /proc/PID/fd/N; the tool would use
# pidfd_getfd) and still has the state file the old image wrote. A fresh old-binary QEMU gets
# that memfd as memory-backend-file mem-path=/proc/self/fd/7 and -incoming defer; variants of
# the load: VARIANT=ignore-shared (capability x-ignore-shared) or cpr-exec (mode cpr-exec set
# on the destination too). Prints the load's outcome and the guest's checker afterwards.
. "$(dirname "$0")/lib.sh"
probe_start outside
pid=$VM_PID
n=$(for f in /proc/"$pid"/fd/*; do
	[ "$(readlink "$f")" = "/memfd:memory-backend-memfd (deleted)" ] && echo "${f##*/}"; done | head -n 1)
exec 7<>"/proc/$pid/fd/$n" || exit 1
orig=()
while IFS= read -r -d '' a; do orig+=("$a"); done <"/proc/$pid/cmdline"
python3 "$probe_dir/cprexec.py" "$VM_QMP" "file:$VM_DIR/vm.state" "$VM_QMP" 10 -- /bin/false >"$VM_DIR/log" 2>&1
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
echo "cpr-exec into /bin/false: PID $pid $(kill -0 "$pid" 2>/dev/null && echo alive || echo gone), state file $(stat -c %s "$VM_DIR/vm.state") B, RAM memfd held at fd 7: $(readlink /proc/$$/fd/7)"
cp "$VM_SERIAL" "$VM_DIR/serial.at-exec"
for variant in ${VARIANTS:-ignore-shared cpr-exec}; do
	args=()
	for a in "${orig[@]}"; do
		case $a in
		memory-backend-memfd,id=mem0,*) a="memory-backend-file,id=mem0,size=$VM_MEM,share=on,mem-path=/proc/self/fd/7" ;;
		file,id=serial0,path=*) a="$a,append=on" ;;
		esac
		args+=("$a")
	done
	rm -f "$VM_DIR/qemu.pid" "$VM_QMP"
	"${args[@]}" -incoming defer 2>"$VM_DIR/back-$variant.err" || { echo "$variant: start failed: $(cat "$VM_DIR/back-$variant.err")"; continue; }
	VM_PID=$(cat "$VM_DIR/qemu.pid") && vm_track_pid "$VM_PID"
	case $variant in
	ignore-shared) vm_qmp "$VM_QMP" '{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"x-ignore-shared","state":true}]}}' >/dev/null ;;
	cpr-exec) echo "  mode: $(vm_qmp "$VM_QMP" '{"execute":"migrate-set-parameters","arguments":{"mode":"cpr-exec"}}')" ;;
	esac
	vm_qmp "$VM_QMP" "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"file:$VM_DIR/vm.state\",\"exit-on-error\":false}}" >/dev/null
	for _ in $(seq 100); do
		st=$(vm_qmp "$VM_QMP" '{"execute":"query-migrate"}' | jq -r .return.status)
		[ "$st" = failed ] || [ "$st" = completed ] && break
		sleep 0.1
	done
	echo "$variant: load $(vm_qmp "$VM_QMP" '{"execute":"query-migrate"}' | cut -c1-250), run state $(vm_runstate)"
	if [ "$(vm_runstate)" = paused ]; then vm_qmp "$VM_QMP" '{"execute":"cont"}' >/dev/null; echo "  cont -> $(vm_runstate)"; fi
	if [ "$(vm_runstate)" = running ] && vm_memcheck_progress 60; then
		echo "  guest: $(vm_memcheck_status); corrupt lines: $(grep -ac 'MEMCHECK CORRUPT' "$VM_SERIAL")"
		vm_stop "$VM_PID"
		break
	fi
	[ -s "$VM_DIR/back-$variant.err" ] && sed 's/^/  stderr: /' "$VM_DIR/back-$variant.err"
	vm_stop "$VM_PID"
done
