#!/usr/bin/python3
"""fakeqmp.py: a hostile QMP server for tests (standard library only; runs as any user).

It binds a UNIX socket at --socket (the path a VM's QMP socket had: its owner can put one
there) and speaks just enough QMP for qemu-upgrade's inspect: the greeting, then one answer
per command, echoing the command's "id". The machine type and the memory backend's id it
reports are taken from the command line, so a test can make them hostile. Every command
received is appended to --log as one JSON line ("<- {...}"), every answer as "-> {...}";
"listening" is logged once the socket accepts connections.

    fakeqmp.py --socket PATH [--move-to PATH2] --log FILE --machine TYPE [--memdev-id ID]
               [--mem-size BYTES]

--move-to: bind at PATH, then rename the socket file to PATH2 (over whatever is there), as a
VM's owner can: the kernel's socket table (/proc/net/unix) keeps naming PATH.

TYPE is what qom-get of /machine "type" answers with "-machine" appended (as QEMU names
its machine classes; the tool strips the suffix), so the tool sees TYPE itself.
"""
import argparse
import json
import os
import signal
import socket
import sys
import threading


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--move-to")
    ap.add_argument("--log", required=True)
    ap.add_argument("--machine", required=True)
    ap.add_argument("--memdev-id", default="mem0")
    ap.add_argument("--mem-size", type=int, default=256 << 20)
    a = ap.parse_args()

    log_lock = threading.Lock()
    logf = open(a.log, "a", buffering=1)

    def log(line):
        with log_lock:
            logf.write(line + "\n")

    def answer(cmd):
        name = cmd.get("execute")
        args = cmd.get("arguments") or {}
        if name == "qmp_capabilities":
            return {"return": {}}
        if name == "query-status":
            return {"return": {"status": "running", "singlestep": False, "running": True}}
        if name == "query-migrate":
            return {"return": {}}
        if name == "query-kvm":
            return {"return": {"enabled": False, "present": False}}
        if name == "query-block-jobs":
            return {"return": []}
        if name == "query-memdev":
            return {"return": [{"id": a.memdev_id, "size": a.mem_size, "merge": True, "dump": True,
                                "prealloc": False, "share": True, "reserve": True,
                                "host-nodes": [], "policy": "default"}]}
        if name == "qom-get" and args.get("property") == "type":
            if args.get("path") == "/machine":
                return {"return": a.machine + "-machine"}
            if args.get("path") == "/objects/" + a.memdev_id:
                return {"return": "memory-backend-memfd"}
        if name == "query-chardev":
            return {"return": []}
        if name == "query-block":
            return {"return": []}
        return {"error": {"class": "GenericError", "desc": "unknown"}}

    def serve(conn):
        dec = json.JSONDecoder()
        buf = ""
        try:
            greeting = {"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7},
                                            "package": ""}, "capabilities": []}}
            conn.sendall((json.dumps(greeting) + "\r\n").encode())
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                buf += data.decode("utf-8", "replace")
                # Commands come as a stream of JSON objects, with or without newlines.
                while True:
                    buf = buf.lstrip()
                    if not buf:
                        break
                    try:
                        cmd, end = dec.raw_decode(buf)
                    except ValueError:
                        break  # incomplete: wait for more
                    buf = buf[end:]
                    log("<- " + json.dumps(cmd))
                    reply = answer(cmd) if isinstance(cmd, dict) else \
                        {"error": {"class": "GenericError", "desc": "not an object"}}
                    if isinstance(cmd, dict) and "id" in cmd:
                        reply["id"] = cmd["id"]
                    log("-> " + json.dumps(reply))
                    conn.sendall((json.dumps(reply) + "\r\n").encode())
        except OSError as e:
            log("connection error: %s" % e)
        finally:
            conn.close()
            log("closed")

    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(a.socket)
    srv.listen(8)
    path = a.socket
    if a.move_to:
        os.rename(a.socket, a.move_to)
        path = a.move_to
    mine = os.stat(path).st_ino

    def stop(*_):
        # Remove the socket file only while it is still ours (a test may have put another there).
        try:
            if os.stat(path).st_ino == mine:
                os.unlink(path)
        except OSError:
            pass
        log("stopped")
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log("listening pid=%d path=%s" % (os.getpid(), path))
    while True:
        conn, _ = srv.accept()
        log("connected")
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
