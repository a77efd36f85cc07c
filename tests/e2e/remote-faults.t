#!/usr/bin/env bash
# --remote's point of no return, with faults injected in the agent (QEMU_UPGRADE_FAULT in its
# environment). First, before it: B's BIOS file is twice the size of A's, so the new QEMU
# there has another pc.bios block: stopped before the old QEMU pauses, with both sizes named,
# B left clean. Then the agent fails after the state loaded there but before its `cont`: it stops
# the new QEMU and says so, and the tool rolls back (exit 1). The agent fails after its
# `cont`: the guest runs there, so the tool must never resume the old QEMU: exit 4
# ("unsettled"), the old QEMU stays paused, --recover leaves it so, and the guest lives on B.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"

bios_src=/usr/share/seabios/bios-256k.bin
[ -r "$bios_src" ] || { echo "1..0 # SKIP no SeaBIOS image at $bios_src"; exit 0; }
tap_plan 14
# A state directory of its own: --recover settles every journal it finds, and the machine's
# would hold the running upgrades of the tests beside this one (it waited for them, then
# failed: seen in CI).
QEMU_UPGRADE_STATE_DIR=$(mktemp -d) && _vm_paths+=("$QEMU_UPGRADE_STATE_DIR") && export QEMU_UPGRADE_STATE_DIR
# Key directories other tests (or an earlier run) left are not this test's to answer for.
tls_before=$(ls -d /run/qemu-upgrade-tls-* 2>/dev/null)
remote_hosts || { echo "Bail out! cannot create the two network namespaces"; exit 1; }
fw=$(mktemp -d) && _vm_paths+=("$fw") && cp "$bios_src" "$fw/bios.bin"
VM_WRAP="ip netns exec $REMOTE_NS_A" vm_start remote-faults -bios "$fw/bios.bin" || exit 1
vm_wait_ready 120 || exit 1
old=$VM_PID
journal=${QEMU_UPGRADE_STATE_DIR:-/run/qemu-upgrade}/$old.journal

# remote_bios SIZE_FACTOR: the BIOS at the same path on B (under the agent's tmpfs over $fw).
remote_bios() {
	local b=/proc/$REMOTE_AGENT/root$fw/bios.bin
	if [ "$1" = 2 ]; then
		{ head -c "$(stat -c %s "$bios_src")" /dev/zero; cat "$bios_src"; } >"$b"
	else
		cp "$bios_src" "$b"
	fi
}

# 0. Another firmware size on B.
remote_agent_start "$VM_DIR" "$fw" || { echo "Bail out! the agent did not start"; exit 1; }
remote_bios 2
remote_upgrade
rc=$?
tap_diag "bigger BIOS on B: exit $rc: $(cat "$VM_DIR/err")"
[ "$rc" = 1 ] && grep -q "RAM block 'pc.bios' is 256 KiB in the running VM but 512 KiB in the new QEMU" "$VM_DIR/err"
tap_ok $? "a BIOS of another size on B: stopped before the pause, the block and both sizes named"
tap_is "$(vm_runstate)" running "the old QEMU runs on, untouched"
tap_is "$(remote_qemus)" "" "no QEMU is left on B"
kill "$REMOTE_AGENT"
# Its listening socket goes when it has exited: the next agent binds the same port.
for _ in $(seq 100); do proc_gone "$REMOTE_AGENT" && break; sleep 0.1; done

# 1. Before the agent's `cont`.
QEMU_UPGRADE_FAULT=10 remote_agent_start "$VM_DIR" "$fw" || { echo "Bail out! the agent did not start"; exit 1; }
remote_bios 1
remote_upgrade
rc=$?
tap_diag "fault before cont: exit $rc: $(cat "$VM_DIR/err")"
[ "$rc" = 1 ] && grep -q "injected fault at point 10.*the new QEMU there was stopped" "$VM_DIR/err"
tap_ok $? "the agent fails before its cont: exit 1, and it says the new QEMU there was stopped"
tap_is "$(vm_runstate)" running "the old QEMU runs the guest again"
tap_is "$(remote_qemus)" "" "no QEMU is left on B"
[ ! -e "$journal" ]
tap_ok $? "no journal is left"
kill "$REMOTE_AGENT"
# Its listening socket goes when it has exited: the next agent binds the same port.
for _ in $(seq 100); do proc_gone "$REMOTE_AGENT" && break; sleep 0.1; done

# 2. After the agent's `cont`.
QEMU_UPGRADE_FAULT=11 remote_agent_start "$VM_DIR" "$fw" || { echo "Bail out! the second agent did not start"; exit 1; }
remote_bios 1
remote_upgrade
rc=$?
tap_diag "fault after cont: exit $rc: $REPORT $(cat "$VM_DIR/err")"
[ "$rc" = 4 ] && [ "$(json_get "$REPORT" result)" = unsettled ] && grep -q "will not be resumed" "$VM_DIR/err"
tap_ok $? "the agent fails after its cont: exit 4 (unsettled), and the message says the old QEMU will not be resumed"
state=$(vm_runstate)
[ "$state" = postmigrate ] || [ "$state" = paused ]
tap_ok $? "the old QEMU is paused ($state), not resumed"
new=$(remote_qemus)
[ -n "$new" ] && vm_track_pid "$new"
[ "$(json_get "$REPORT" new_pid)" = "$new" ] || tap_diag "the report names new_pid $(json_get "$REPORT" new_pid), B runs $new"
[ -n "$new" ] && [ "$(json_get "$REPORT" new_pid)" = "$new" ] &&
	VM_PID=$new VM_SERIAL=/proc/$new/root$VM_DIR/serial.log vm_memcheck_progress 60 &&
	[ "$(VM_SERIAL=/proc/$new/root$VM_DIR/serial.log vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest runs on B (the QEMU the report names), its memory intact"
out=$(ip netns exec "$REMOTE_NS_A" "$QU_BIN" --recover 2>&1)
tap_diag "recover: $out"
grep -q "PID $old: upgrade to $REMOTE_B_IP: .*left paused and will not be resumed" <<<"$out" && [ ! -e "$journal" ]
tap_ok $? "--recover says the old QEMU stays paused, and settles the journal"
state=$(vm_runstate)
[ "$state" = postmigrate ] || [ "$state" = paused ]
tap_ok $? "and leaves it paused ($state)"
# The operator's step, once B is checked: the old QEMU goes; the guest lives on.
vm_stop "$old"
VM_PID=$new VM_SERIAL=/proc/$new/root$VM_DIR/serial.log vm_memcheck_progress 30
tap_ok $? "with the old QEMU gone, the guest keeps running on B"
tap_is "$(remote_tls_leaks "$tls_before")" "" "no TLS key is left behind on either host, also when the resume failed past the cont"
tap_done
