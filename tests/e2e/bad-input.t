#!/usr/bin/env bash
# Bad input gets a clear error and a non-zero exit, and the VM is untouched: same process,
# same run state, no migration settings changed, no second QEMU left behind.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 45
vm_start bad || exit 1
vm_wait_ready || exit 1

# expect_error DESC WANT_RC MESSAGE_PATTERN ARGS...
expect_error() {
	local desc=$1 want=$2 pattern=$3 err rc
	shift 3
	err=$("$QU_BIN" --quiet "$@" 2>&1 >/dev/null)
	rc=$?
	tap_diag "$desc: exit $rc: $err"
	[ "$rc" = "$want" ] && grep -qE -e "$pattern" <<<"$err"
	tap_ok $? "$desc: exit $want and says '$pattern'"
}

# The VM is as it was: same PID, given run state, x-ignore-shared untouched, and no process
# but the VM refers to its directory (a started-and-forgotten new QEMU would).
untouched() {
	local state=$1 caps others
	caps=$(vm_qmp "$VM_QMP" '{"execute":"query-migrate-capabilities"}')
	others=$(qemu_pids_for "$VM_DIR" | grep -vcx "$VM_PID")
	[ -e "/proc/$VM_PID" ] && [ "$(vm_runstate)" = "$state" ] &&
		grep -q '"capability": "x-ignore-shared", "state": false\|"state": false, "capability": "x-ignore-shared"' <<<"$caps" &&
		[ "$others" = 0 ]
}

gone_pid=$(sh -c 'echo $$')
expect_error "a PID that does not exist" 2 "no process with PID $gone_pid" --pid "$gone_pid"
expect_error "a PID that is not a number" 2 "not a process ID" --pid abc
sleep 300 &
sleeper=$!
vm_track_pid "$sleeper"
expect_error "a process that is not QEMU" 2 "not a QEMU system emulator" --pid "$sleeper"
tap_check "the non-QEMU process still runs" kill -0 "$sleeper"

noqmp_dir=$(mktemp -d)
_vm_paths+=("$noqmp_dir")
"$QEMU" -accel tcg -machine q35 -m 64M -nodefaults -display none -daemonize -pidfile "$noqmp_dir/pid"
noqmp=$(cat "$noqmp_dir/pid")
vm_track_pid "$noqmp"
expect_error "a VM without QMP" 2 "has no QMP monitor.*--qmp" --pid "$noqmp"
tap_check "the VM without QMP still runs" kill -0 "$noqmp"

expect_error "a new binary that is missing" 2 "new binary /nonexistent/qemu: No such file" \
	--pid "$VM_PID" --new-binary /nonexistent/qemu
notexec=$VM_DIR/not-executable
cp "${QEMU}" "$notexec" && chmod 644 "$notexec"
expect_error "a new binary that is not executable" 2 "is not an executable file" --pid "$VM_PID" --new-binary "$notexec"
expect_error "a new binary that is not QEMU" 2 "is not QEMU" --pid "$VM_PID" --new-binary /bin/true
tap_check "after bad binaries the VM is untouched and running" untouched running

vm_qmp "$VM_QMP" '{"execute":"stop"}' >/dev/null
expect_error "a paused VM" 3 "not running \(run state 'paused'\).*cont" --pid "$VM_PID"
tap_check "the paused VM is untouched and still paused" untouched paused
vm_qmp "$VM_QMP" '{"execute":"cont"}' >/dev/null

# A migration that crawls: 4 KiB/s to a sink that keeps nothing.
vm_qmp "$VM_QMP" '{"execute":"migrate-set-parameters","arguments":{"max-bandwidth":4096}}' >/dev/null
vm_qmp "$VM_QMP" '{"execute":"migrate","arguments":{"uri":"exec:cat >/dev/null"}}' >/dev/null
expect_error "a migration already running" 3 "migration is already running" --pid "$VM_PID"
vm_qmp "$VM_QMP" '{"execute":"migrate_cancel"}' >/dev/null
for _ in $(seq 50); do
	vm_qmp "$VM_QMP" '{"execute":"query-migrate"}' | grep -q '"status": "cancelled"' && break
	sleep 0.1
done
vm_qmp "$VM_QMP" '{"execute":"migrate-set-parameters","arguments":{"max-bandwidth":134217728}}' >/dev/null
tap_check "after the refused upgrade during a migration the VM is untouched and running" untouched running

expect_error "--timeout that is not a number" 2 "give seconds" --pid "$VM_PID" --timeout soon
expect_error "an unknown option" 2 "unrecognized option|invalid option" --pid "$VM_PID" --frobnicate
expect_error "no --pid" 2 "which VM" --json
expect_error "a --qmp socket that does not exist" 2 "cannot connect to QMP socket /nonexistent.sock" \
	--pid "$VM_PID" --qmp /nonexistent.sock

expect_error "--all with --pid" 2 "takes no --pid" --all --pid "$VM_PID"
expect_error "--jobs out of range" 2 "give a number from 1 to 64" --all --jobs 0
expect_error "--binary without --all" 2 "go with --all" --pid "$VM_PID" --binary /usr/bin/qemu-system-x86_64
echo "jobs = many" >"$VM_DIR/bad.conf"
QEMU_UPGRADE_CONF=$VM_DIR/bad.conf expect_error "a malformed configuration file" 2 "bad.conf:1: bad value 'many' for 'jobs'" --all --dry-run
expect_error "--max-downtime out of range" 2 "--max-downtime 0: give milliseconds, 1 to 60000" --pid "$VM_PID" --max-downtime 0
expect_error "--max-bandwidth not a number" 2 "--max-bandwidth lots: give MiB/s" --pid "$VM_PID" --max-bandwidth lots
expect_error "a stray argument" 2 "unexpected argument 'now'" --pid "$VM_PID" now
expect_error "--recover with --pid" 2 "--recover settles every interrupted upgrade; it takes no --pid" --recover --pid "$VM_PID"
expect_error "--write-stream into a missing directory" 2 "cannot write the stream to /nonexistent/dir/s.bin" --pid "$VM_PID" --write-stream /nonexistent/dir/s.bin
# Subcommands that take their own arguments (no --quiet in front).
expect_error_raw() {
	local desc=$1 want=$2 pattern=$3 err rc
	shift 3
	err=$("$QU_BIN" "$@" 2>&1)
	rc=$?
	tap_diag "$desc: exit $rc: $(tail -n 3 <<<"$err")"
	[ "$rc" = "$want" ] && grep -qE -e "$pattern" <<<"$err"
	tap_ok $? "$desc: exit $want and says '$pattern'"
}
expect_error_raw "inspect without --pid" 2 "which VM\\? Give --pid PID" inspect
expect_error_raw "dump-stream of a missing file" 2 "cannot open /nonexistent.bin: No such file" dump-stream /nonexistent.bin
head -c 100 /dev/urandom >"$VM_DIR/junk.bin"
expect_error_raw "dump-stream of a file that is not a stream" 1 "junk.bin: damaged record at byte 0" dump-stream "$VM_DIR/junk.bin"
expect_error_raw "--copy-storage without --remote" 2 "go with --remote HOST" --pid 1 --copy-storage
expect_error_raw "--remote with --all" 2 "--remote moves one VM: give --pid PID" --all --remote host2
expect_error_raw "--remote with a bad port" 2 "--remote host2:99999: invalid remote host" --pid 1 --remote host2:99999
expect_error_raw "--copy-storage with --shared-storage" 2 "exclude each other" --pid 1 --remote host2 --copy-storage --shared-storage
expect_error_raw "--remote-key (the shared key is gone)" 2 "--remote-key is gone: the TCP agent authenticates with x509 certificates" \
	--pid "$VM_PID" --remote 127.0.0.1:1 --remote-key /nonexistent/key
expect_error_raw "agent --key (the shared key is gone)" 2 "--key is gone: .agent --listen. runs TLS 1.3 with x509" agent --listen 127.0.0.1:0 --key /nonexistent/key
# A certificate directory whose private key others may read: refused, naming the file.
pki=$VM_DIR/pki && mkdir -m 700 "$pki" &&
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=qu-bad-input \
		-keyout "$pki/client-key.pem" -out "$pki/client-cert.pem" 2>/dev/null &&
	cp "$pki/client-cert.pem" "$pki/ca-cert.pem" && chmod 644 "$pki/client-key.pem"
expect_error_raw "--remote with a client key others can read" 2 "$pki/client-key.pem is a private key that others than root can read" \
	--pid "$VM_PID" --remote 127.0.0.1:1 --pki-dir "$pki"
expect_error_raw "agent without its certificates" 2 "cannot read /nonexistent/ca-cert.pem" agent --listen 127.0.0.1:0 --pki-dir /nonexistent
expect_error_raw "check of a binary that does not exist" 1 "new binary /nonexistent/qemu: No such file or directory" check --binary /nonexistent/qemu

# Another client holds the VM's only QMP connection: a clear error within seconds.
socat -u "UNIX-CONNECT:$VM_QMP" /dev/null 2>/dev/null &
holder=$!
sleep 0.5
expect_error "a QMP monitor held by another client" 2 "another client probably holds the monitor" --pid "$VM_PID"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
tap_check "after the busy monitor the VM is untouched and running" untouched running

# Guest RAM in an explicit unshared backend: refused (copying it is not safe yet).
first_pid=$VM_PID first_serial=$VM_SERIAL
VM_RAM=anon vm_start bad-anon -object memory-backend-ram,id=pc.ram,size=256M -machine memory-backend=pc.ram || exit 1
expect_error "a VM whose RAM is an explicit unshared backend, without --allow-copy" 3 "share=off\) and would have to be copied.*--allow-copy" --pid "$VM_PID"
tap_check "the explicit-backend VM is untouched and running" untouched running

VM_PID=$first_pid VM_SERIAL=$first_serial
vm_memcheck_progress 60
tap_ok $? "the first VM's guest still makes progress"
tap_is "$(vm_memcheck_errors)" 0 "the first VM's guest reports no corruption"
tap_done
