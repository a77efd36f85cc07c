#!/usr/bin/env bash
# The RPM file trigger, run by rpm itself: a package carrying the %transfiletriggerin snippet
# that `make install` ships (which found that rpm 4.18 fires a transaction file trigger only
# on a directory prefix), and a QEMU package (7.2, then 10.0 from bookworm-backports) built
# with rpmbuild, both installed with rpm into a private database. The snippet is the installed
# one with its two paths moved into the test's prefix (the QEMU binaries under the prefix,
# the qemu-upgrade under test). The upgrade of the QEMU package (rpm -U: files written beside
# and renamed over, vanished files removed) fires the trigger once, which moves every VM of
# the prefix to 10.0, guests clean, and leaves a VM on the system's QEMU alone.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

command -v rpmbuild >/dev/null && command -v rpm >/dev/null ||
	{ echo "1..0 # SKIP rpm and rpmbuild are not installed (tests/install-deps.sh installs them)"; exit 0; }
tap_plan 9
vm_qemu10
new_root=${Q10%/usr/bin/qemu-system-x86_64}

T=$(mktemp -d)
_vm_paths+=("$T")
P=$T/prefix
make -s -C "$QU_ROOT" install PREFIX="$T/usr" SYSCONFDIR="$T/etc" >/dev/null
snippet=$T/usr/share/qemu-upgrade/rpm-qemu-upgrade.filetrigger
grep -q '^%transfiletriggerin -- /usr/bin$' "$snippet"
tap_ok $? "make install ships the RPM file-trigger snippet"

# rpmbuild with nothing of the distribution's post-processing (no strip, no debuginfo).
rpmdef=(--define "_topdir $T/rpmbuild" --define "debug_package %{nil}" --define "__os_install_post %{nil}"
	--define "_build_id_links none" --define "_binary_payload w1.gzdio" --quiet)
# build_qemu_rpm VERSION STAGE: a package owning everything under $P, made from STAGE/usr.
build_qemu_rpm() {
	local ver=$1 stage=$2 spec=$T/qemu-$1.spec
	cat >"$spec" <<-EOF
	Name: qu-test-qemu
	Version: $ver
	Release: 1
	Summary: QEMU for a qemu-upgrade test
	License: GPL-2.0
	AutoReqProv: no
	%description
	QEMU under a private prefix.
	%install
	mkdir -p %{buildroot}$P
	cp -a $stage/usr %{buildroot}$P/
	%files
	$P
	EOF
	rpmbuild -bb "${rpmdef[@]}" "$spec" >"$T/rpmbuild-$ver.log" 2>&1
}
s72=$T/stage-7.2
mkdir -p "$s72/usr/bin" "$s72/usr/share" "$s72/usr/lib/x86_64-linux-gnu"
cp -a /usr/bin/qemu-system-x86_64 "$s72/usr/bin/"
cp -a /usr/share/qemu /usr/share/seabios "$s72/usr/share/"
cp -a /usr/lib/x86_64-linux-gnu/qemu "$s72/usr/lib/x86_64-linux-gnu/"
{
	cat <<-EOF
	Name: qu-test-qemu-upgrade-hook
	Version: 1
	Release: 1
	Summary: the qemu-upgrade RPM file trigger
	License: GPL-2.0
	AutoReqProv: no
	%description
	The file trigger qemu-upgrade ships for RPM systems.
	%files
	EOF
	sed -e "s|/usr/bin/qemu-upgrade|$QU_BIN|g" -e "s|^\(%transfiletriggerin -- \)/usr/bin\$|\1$P/usr/bin|" \
		-e "s|'^/usr/bin/qemu-system-'|'^$P/usr/bin/qemu-system-'|" "$snippet"
} >"$T/hook.spec"
build_qemu_rpm 7.2 "$s72" && build_qemu_rpm 10.0 "$new_root" && rpmbuild -bb "${rpmdef[@]}" "$T/hook.spec" >"$T/rpmbuild-hook.log" 2>&1
tap_ok $? "rpmbuild makes the QEMU 7.2 and 10.0 packages and the trigger package" ||
	tap_diag "$(tail -n 5 "$T"/rpmbuild-*.log | tr '\n' '|')"
rpms=$T/rpmbuild/RPMS/x86_64
db=(--dbpath "$T/rpmdb" --nodeps --nosignature)
mkdir -p "$T/rpmdb"
rpm --dbpath "$T/rpmdb" --initdb
export QEMU_UPGRADE_CONF=$T/etc/qemu-upgrade.conf
# Another test's --all (package-hook.t) must not run at the same moment: each would upgrade
# the other's replaced VMs.
exec 8>"$QU_BUILD/package-hooks.lock"
flock 8
rpm -i "${db[@]}" "$T"/rpmbuild/RPMS/*/qu-test-qemu-upgrade-hook-1-1.*.rpm 2>>"$T/rpm-i.log" &&
	rpm -i "${db[@]}" "$rpms"/qu-test-qemu-7.2-1.x86_64.rpm 2>>"$T/rpm-i.log" && [ -x "$P/usr/bin/qemu-system-x86_64" ]
tap_ok $? "rpm installs the trigger package and QEMU 7.2 into the prefix"

declare -A dir pid
for vm in a b; do
	QEMU=$P/usr/bin/qemu-system-x86_64 vm_start "rpm-$vm" -name "rpm-$vm" || exit 1
	dir[$vm]=$VM_DIR pid[$vm]=$VM_PID
done
vm_start rpm-system -name rpm-system || exit 1
dir[s]=$VM_DIR pid[s]=$VM_PID
for vm in a b s; do VM_SERIAL=${dir[$vm]}/serial.log VM_PID=${pid[$vm]} vm_wait_ready || exit 1; done

rpm -U "${db[@]}" "$rpms"/qu-test-qemu-10.0-1.x86_64.rpm >"$T/rpm-U.log" 2>&1
tap_is "$?" 0 "rpm -U to QEMU 10.0 succeeds (the trigger never fails the transaction)"
tap_diag "rpm -U: $(tr "\n" "|" <"$T/rpm-U.log") triggers: $(rpm --dbpath "$T/rpmdb" -q --filetriggers qu-test-qemu-upgrade-hook | tr "\n" "|")"
for vm in a b; do
	VM_DIR=${dir[$vm]} VM_SERIAL=${dir[$vm]}/serial.log VM_QMP=${dir[$vm]}/qmp.sock
	VM_PID=$(cat "$VM_DIR/qemu.pid")
	vm_track_pid "$VM_PID"
	[ "$VM_PID" != "${pid[$vm]}" ] && [ "$(readlink "/proc/$VM_PID/exe")" = "$P/usr/bin/qemu-system-x86_64" ] &&
		vm_qmp "$VM_QMP" '{"execute":"query-version"}' | grep -q '"major": 10'
	tap_ok $? "VM $vm: the trigger moved it to QEMU 10.0 from the package"
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
	tap_ok $? "VM $vm: the guest makes progress with no corruption"
done
VM_PID=${pid[s]} VM_QMP=${dir[s]}/qmp.sock
[ -e "/proc/$VM_PID" ] && [ "$(vm_runstate)" = running ]
tap_ok $? "the VM on the system's QEMU is untouched and running"
flock -u 8
tap_done
