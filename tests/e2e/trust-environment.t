#!/usr/bin/env bash
# The VM's environment never reaches a root process. A VM owned by nobody runs with
# LD_PRELOAD naming a library by absolute path and one found only through LD_LIBRARY_PATH;
# each library records the user of every process that loads it. The old QEMU loads both (the
# attack is live), yet after a dry run and an upgrade neither records root: the new binary is
# probed as the VM's user with a fixed environment. The new QEMU gets the VM's environment
# as the VM's user, exactly as the old one had it (no more privilege), and the guest is clean.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 9
evil=$QU_BUILD/tests/helpers/evilpreload.so
[ -f "$evil" ] || { echo "Bail out! $evil is missing: run make units"; exit 1; }
lib=$(mktemp -d)
_vm_paths+=("$lib")
chmod 755 "$lib"
mkdir "$lib/abs" "$lib/path"
cp "$evil" "$lib/abs/evil.so"
cp "$evil" "$lib/path/libqu-evil.so"
for f in "$lib/abs/evil.so.log" "$lib/path/libqu-evil.so.log"; do
	: >"$f"
	chmod 666 "$f"
done

VM_OWNER=nobody VM_WRAP="setpriv --reuid=65534 --regid=65534 --clear-groups env LD_PRELOAD=$lib/abs/evil.so:libqu-evil.so LD_LIBRARY_PATH=$lib/path" \
	vm_start trustenv || exit 1
vm_wait_ready || exit 1

# loaded_by LOG: the users that loaded the library ("65534 ..."), one per line.
loaded_by() { sed -n 's/^uid=\([0-9]*\).*/\1/p' "$1" | sort -u | tr '\n' ' '; }
root_loaded() { grep -h '^uid=0 \|euid=0 ' "$lib/abs/evil.so.log" "$lib/path/libqu-evil.so.log"; }

grep -q "^LD_PRELOAD=$lib/abs/evil.so:libqu-evil.so" <(tr '\0' '\n' <"/proc/$VM_PID/environ") &&
	[ "$(loaded_by "$lib/abs/evil.so.log")" = "65534 " ] && [ "$(loaded_by "$lib/path/libqu-evil.so.log")" = "65534 " ]
tap_ok $? "the old QEMU runs as nobody with both libraries loaded (by path, and through LD_LIBRARY_PATH)"

out=$("$QU_BIN" --pid "$VM_PID" --dry-run --json --quiet 2>"$VM_DIR/err")
rc=$?
tap_diag "dry run: rc $rc, $(json_get "$out" result) $(json_get "$out" new_version) $(cat "$VM_DIR/err")"
[ $rc = 0 ] && [ "$(json_get "$out" result)" = planned ] && [ -n "$(json_get "$out" new_version)" ]
tap_ok $? "a dry run probes the new binary"
found=$(root_loaded)
tap_diag "loaded as root: ${found:-nothing}"
[ -z "$found" ]
tap_ok $? "the dry run loaded neither library as root"

old=$VM_PID
vm_upgrade
rc=$?
tap_diag "upgrade: rc $rc, $(json_get "$REPORT" result) $(json_get "$REPORT" error)"
[ $rc = 0 ] && [ "$(json_get "$REPORT" result)" = upgraded ] && [ "$VM_PID" != "$old" ]
tap_ok $? "upgraded"
found=$(root_loaded)
tap_diag "loaded as root: ${found:-nothing}; abs: $(loaded_by "$lib/abs/evil.so.log"), path: $(loaded_by "$lib/path/libqu-evil.so.log")"
[ -z "$found" ]
tap_ok $? "the upgrade loaded neither library as root"
grep -q "pid=$VM_PID " "$lib/abs/evil.so.log" && grep -q "pid=$VM_PID " "$lib/path/libqu-evil.so.log"
tap_ok $? "the new QEMU got the VM's environment, as the VM's user (both libraries loaded there as nobody)"
grep -q '^Uid:[[:space:]]*65534' "/proc/$VM_PID/status"
tap_ok $? "the new QEMU runs as nobody"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ] && [ "$(vm_runstate)" = running ]
tap_ok $? "the guest makes progress, clean, running"
# A second upgrade of the VM (now started by us) keeps all of it.
vm_upgrade
[ $? = 0 ] && [ -z "$(root_loaded)" ] && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "a second upgrade: upgraded, still nothing loaded as root"
tap_done
