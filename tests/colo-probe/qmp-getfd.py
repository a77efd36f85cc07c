#!/usr/bin/env python3
"""qmp-getfd.py QMP_SOCKET FDNAME (listen ADDR PORT [INCOMING_URI] | connect ADDR PORT):
one TCP connection made outside QEMU (accepted or connected here, in whatever network
namespace this runs in), handed to the QEMU behind QMP_SOCKET with `getfd` as FDNAME; with
listen and INCOMING_URI, then `migrate-incoming` that URI (fd:FDNAME). The shape of an agent
that makes COLO's migration connection itself and passes it to QEMU (colo-pair.sh,
COLO_CHANNEL=fd). Prints QEMU's answers; exits 1 if one is an error."""
import json
import socket
import sys


def qmp_open(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(path)
    f = s.makefile("r")
    f.readline()  # greeting
    return s, f


def command(s, f, cmd, args=None, fds=()):
    msg = json.dumps({"execute": cmd, **({"arguments": args} if args else {})}).encode() + b"\n"
    if fds:
        socket.send_fds(s, [msg], list(fds))
    else:
        s.sendall(msg)
    while True:
        line = f.readline()
        if not line:
            sys.exit("%s: monitor closed" % cmd)
        reply = json.loads(line)
        if "return" in reply or "error" in reply:
            print("%s: %s" % (cmd, json.dumps(reply)), flush=True)
            if "error" in reply:
                sys.exit(1)
            return reply


def main():
    path, name, mode, addr, port = sys.argv[1:6]
    if mode == "listen":
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((addr, int(port)))
        srv.listen(1)
        print("listening", flush=True)
        srv.settimeout(120)
        conn, _ = srv.accept()
        srv.close()
    else:
        conn = socket.create_connection((addr, int(port)), timeout=30)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s, f = qmp_open(path)
    command(s, f, "qmp_capabilities")
    command(s, f, "getfd", {"fdname": name}, fds=[conn.fileno()])
    conn.close()  # QEMU holds its own copy now
    if mode == "listen" and len(sys.argv) > 6:
        command(s, f, "migrate-incoming", {"uri": sys.argv[6]})
    s.close()


main()
