#!/usr/bin/python3
"""sockcut.py PEER_PID HOLDER_PID: ends the UNIX socket connection between two processes on
PEER_PID's side, as PEER_PID's owner could: a copy of PEER_PID's end (pidfd_getfd), then
shutdown(SHUT_RDWR) on it. Both ends read the end of the stream; both processes live on.

The standby tests use it to lose the supervisor's monitor connection while the primary QEMU
lives (PEER_PID the QEMU, HOLDER_PID the supervisor). The pairs come from `ss -xn` (the
inode of each end and of its peer) and /proc/PID/fd (which descriptor holds which inode).
ss lists the sockets of its own network namespace: run it in the processes' one.
Prints the descriptor it cut in PEER_PID; exits 1 when no such connection exists.
"""
import ctypes
import os
import socket
import subprocess
import sys

SYS_PIDFD_GETFD = 438


def socket_fds(pid):
    """{inode: fd} of the process's sockets."""
    fds = {}
    d = f"/proc/{pid}/fd"
    for name in os.listdir(d):
        try:
            target = os.readlink(f"{d}/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            fds[int(target[8:-1])] = int(name)
    return fds


def peers():
    """{inode: peer inode} of every connected UNIX socket (ss prints "* INODE" on each side)."""
    out = subprocess.run(["ss", "-xn"], capture_output=True, text=True, check=True).stdout
    pairs = {}
    for line in out.splitlines()[1:]:
        f = line.split()
        if len(f) >= 8 and f[-3].isdigit() and f[-1].isdigit():
            pairs[int(f[-3])] = int(f[-1])
    return pairs


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    peer, holder = int(sys.argv[1]), int(sys.argv[2])
    mine, theirs, links = socket_fds(peer), socket_fds(holder), peers()
    cut = [fd for ino, fd in mine.items() if links.get(ino) in theirs]
    if not cut:
        print(f"sockcut.py: no UNIX connection between PID {peer} and PID {holder}", file=sys.stderr)
        sys.exit(1)
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(peer)
    for fd in cut:
        copy = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if copy < 0:
            sys.exit(f"sockcut.py: pidfd_getfd({peer}, {fd}): {os.strerror(ctypes.get_errno())}")
        s = socket.socket(fileno=copy)
        s.shutdown(socket.SHUT_RDWR)
        s.close()
        print(fd)
    os.close(pidfd)


if __name__ == "__main__":
    main()
