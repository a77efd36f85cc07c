#!/usr/bin/env bash
# Installs everything qemu-upgrade needs to build, test and demo on Debian 12, as root.
# Safe to run again: apt-get skips what is there.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: run as root (apt-get, and the tests start VMs and use network namespaces)" >&2
	exit 2
fi
export DEBIAN_FRONTEND=noninteractive
# The package lists may be stale or missing on a fresh machine.
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	build-essential g++ pkg-config libxml2-dev libjson-c-dev zlib1g-dev libcap-dev libcmocka-dev libssl-dev libseccomp-dev \
	qemu-system-x86 qemu-utils \
	busybox-static cpio gzip xz-utils \
	socat jq iproute2 iputils-ping procps util-linux man-db perl ca-certificates inotify-tools python3 tcpdump \
	openssl \
	clang-14 libclang-rt-14-dev llvm-14 libcap2-bin \
	rpm patchelf >/dev/null   # rpm: the RPM file trigger is tested with rpm itself (rpm-hook.t);
	                 # tcpdump: the standby tests capture the announce of a guest that failed over;
	                 # openssl: the TLS agent tests make their CA and certificates with it (tests/lib/remote.sh);
	                 # patchelf: other suites' QEMU runs here on its own loader (tests/qemu-versions/);
	                 # clang's libFuzzer and sanitizer runtimes: make fuzz (tests/fuzz/)
	                 # g++ (build-essential has it too): the header compiles as C++ (tests/library/)
	                 # libxml2-dev: libvirt's status file is read with libxml2 (upgrade/libvirt.c)
# A real libvirt daemon for tests/e2e/libvirt.t (the test starts it itself when PID 1 is not
# systemd; the systemd units these packages bring are not started on such a machine).
apt-get install -y -qq --no-install-recommends libvirt-daemon-system libvirt-clients >/dev/null
# A real sshd for tests/e2e/remote-ssh.t (--remote ssh://): the test runs its own, with its own
# config, host key and authorized keys, in a network namespace. Installing the package must
# not start the system's sshd: a policy-rc.d that says no while apt runs (kept when one exists
# already), and /etc/ssh's files are the package's, never edited here.
if ! command -v sshd >/dev/null && ! [ -x /usr/sbin/sshd ]; then
	policy=/usr/sbin/policy-rc.d own_policy=
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
	fi
	apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
	[ -z "$own_policy" ] || rm -f "$policy"
fi
