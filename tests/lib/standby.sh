# standby.sh: what the standby tests share (tests/e2e/standby*.t). Source after remote.sh.

# standby_qemu: QEMU 11.1 from Debian sid (tests/qemu-versions/fetch.sh, cached in
# /var/cache/qemu-upgrade-tests) in Q11; without it the test is skipped, since COLO works on
# no other version (docs/standby-research.md).
standby_qemu() {
	local cache=/var/cache/qemu-upgrade-tests
	mkdir -p "$cache"
	Q11=$( (flock 9; "$QU_ROOT/tests/qemu-versions/fetch.sh" sid "$cache") 9>"$cache/.lock" 2>"$cache/.fetch-sid.err" | tail -n 1)
	[ -x "$Q11" ] || {
		echo "1..0 # SKIP QEMU 11.1 (Debian sid) cannot be fetched, and COLO works on no other version: $(tail -n 1 "$cache/.fetch-sid.err")"
		exit 0
	}
}

# standby ARGS...: `qemu-upgrade standby ARGS` on host A; OUT gets its stdout, ERR its stderr
# (kept in VM_DIR/standby.err); returns its exit status.
standby() {
	local rc
	OUT=$(ip netns exec "$REMOTE_NS_A" "$QU_BIN" standby "$@" 2>"$VM_DIR/standby.err")
	rc=$?
	ERR=$(cat "$VM_DIR/standby.err")
	return $rc
}
