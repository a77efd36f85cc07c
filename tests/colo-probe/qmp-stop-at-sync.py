#!/usr/bin/env python3
"""qmp-stop-at-sync.py QMP_SOCKET N: polls query-migrate on the QEMU behind QMP_SOCKET (a
migration source) every 10 ms and sends `stop` as soon as the migration is `active` with
ram.dirty-sync-count >= N (colo-pair.sh, COLO_STOP=syncN). QEMU syncs the dirty bitmap once
when the migration starts and once at the end of each pass, so N=2 stops the guest right
after the first full pass: the dirty rounds after it are made with the guest stopped. Prints one line: `stopped ...` with the counters seen
just before the stop, or `too-late status=...` when the migration left `active` first (then
nothing is stopped). A separate process holding one monitor connection, because a new
connection per poll (colo-pair.sh's qmp) is too slow to catch a round that lasts 100 ms.
Exit 0 stopped, 3 too late, 1 an error."""
import json
import socket
import sys
import time


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: qmp-stop-at-sync.py QMP_SOCKET N")
    path, want = sys.argv[1], int(sys.argv[2])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    f = s.makefile("r")
    f.readline()  # greeting

    def command(cmd):
        s.sendall(json.dumps({"execute": cmd}).encode() + b"\n")
        while True:
            line = f.readline()
            if not line:
                sys.exit("%s: monitor closed" % cmd)
            reply = json.loads(line)
            if "event" in reply:  # events come on every monitor once negotiated
                continue
            if "error" in reply:
                sys.exit("%s: %s" % (cmd, json.dumps(reply["error"])))
            return reply["return"]

    command("qmp_capabilities")
    end = time.monotonic() + 120
    while time.monotonic() < end:
        m = command("query-migrate")
        status = m.get("status", "none")
        ram = m.get("ram", {})
        syncs = ram.get("dirty-sync-count", 0)
        if status == "active" and syncs >= want:
            command("stop")
            print("stopped dirty-sync-count=%d remaining=%d transferred=%d dirty-pages-rate=%d"
                  % (syncs, ram.get("remaining", -1), ram.get("transferred", -1),
                     ram.get("dirty-pages-rate", -1)), flush=True)
            return 0
        if status not in ("setup", "active", "none"):
            print("too-late status=%s dirty-sync-count=%d" % (status, syncs), flush=True)
            return 3
        time.sleep(0.01)
    print("timeout: migration never reached dirty-sync-count %d" % want, flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
