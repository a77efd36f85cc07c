#!/usr/bin/python3
"""listenfd.py: start a program with a listening UNIX socket at a given descriptor, as libvirtd
starts QEMU with its monitor socket (-chardev socket,id=charmonitor,fd=N,server=on).

    listenfd.py PATH FD UID COMMAND [ARGS...]

Binds PATH, gives it to UID (the VM's user connects to it, as libvirt's socket belongs to its
qemu user), listens, puts the socket at descriptor FD and executes COMMAND.
"""
import os
import socket
import sys

if len(sys.argv) < 5:
    raise SystemExit(__doc__)
path, fd, uid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chown(path, uid, -1)
s.listen(16)
if s.fileno() != fd:
    os.dup2(s.fileno(), fd)
os.set_inheritable(fd, True)  # the socket may already be at fd, close-on-exec
os.execvp(sys.argv[4], sys.argv[4:])
