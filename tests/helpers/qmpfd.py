#!/usr/bin/python3
"""qmpfd.py: give a running QEMU a descriptor at run time, as libvirt does (standard library).

    qmpfd.py SOCKET FILE MODE FDSET-ID OPAQUE [COMMAND...]

Opens FILE (MODE: r, w, rw, a: read, write, read-write, append-write), connects to the QMP
monitor at SOCKET and sends {"execute":"add-fd","arguments":{"fdset-id":N,"opaque":X}} with
the descriptor attached (SCM_RIGHTS), as libvirt passes a hot-plugged disk's or a chardev's
file; then each COMMAND (a QMP command as JSON, e.g. a blockdev-add of /dev/fdset/N), in the
same session: QEMU 7.2 drops a set's descriptors that nothing uses once no monitor is
connected (10.0 keeps them; measured), so libvirt uses the set while it holds the monitor, and
so does this.
Prints each answer (one JSON line); exits 1 when QEMU answers an error or not at all.
"""
import json
import os
import socket
import sys

MODES = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR, "a": os.O_WRONLY | os.O_APPEND}


def reply(f):
    """The next line that answers a command (events are skipped)."""
    for line in f:
        msg = json.loads(line)
        if "return" in msg or "error" in msg:
            return msg
    raise SystemExit("qmpfd.py: the monitor closed without answering")


def main():
    if len(sys.argv) < 6 or sys.argv[3] not in MODES:
        raise SystemExit(__doc__)
    path, fname, mode, fdset = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    fd = os.open(fname, MODES[mode])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(path)
    f = s.makefile("r")
    json.loads(f.readline())  # the greeting
    s.sendall(b'{"execute":"qmp_capabilities"}\n')
    reply(f)
    args = {"fdset-id": fdset, "opaque": sys.argv[5]}
    socket.send_fds(s, [json.dumps({"execute": "add-fd", "arguments": args}).encode() + b"\n"], [fd])
    os.close(fd)
    msg = reply(f)
    print(json.dumps(msg))
    for cmd in sys.argv[6:]:
        if "return" not in msg:
            break
        s.sendall(cmd.encode() + b"\n")
        msg = reply(f)
        print(json.dumps(msg))
    sys.exit(0 if "return" in msg else 1)


main()
