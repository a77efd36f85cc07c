#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/: real records of the handover stream
(docs/stream.md), real QEMU command lines, QMP traffic and `info ramblock` tables as QEMU 7.2
prints them, the shipped configuration file, a journal as qu_journal_write writes it. Each
file starts with the mode byte its target expects (see the target's comment). Run it from
anywhere after changing a format; it rewrites only the files it names."""
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = 0x47505551
HELLO, ARG, ENV, FD, CWD, EXEC, STARTED, ERROR, END, CONTEXT, CALL, REPLY, SEALED = range(1, 14)
FD_ELIDED = 1
KIND = {"stdio": 1, "control": 2, "migration": 3, "ram": 4, "listener": 5, "tap": 6, "namespace": 7,
        "vhost": 8, "pty": 9, "socket": 10}


def rec(rtype, payload=b"", flags=0):
    hdr = struct.pack("<IHHI", MAGIC, rtype, flags, len(payload))
    return hdr + struct.pack("<I", zlib.crc32(payload, zlib.crc32(hdr))) + payload


def s(text):
    return text.encode() + b"\0"


def fd_payload(target, kind, name, spec=""):
    return struct.pack("<II", target, KIND[kind]) + s(name) + (s(spec) if spec else b"")


def sealed(inner):
    # The retired SEALED record (the shared-key agent's; 32 zero bytes stood in for its MAC):
    # kept as seeds, since a stream must refuse it as an unknown type.
    return rec(SEALED, inner + b"\0" * 32)


CONTEXT_TEXT = ("uid=107\ngid=108\numask=27\nnice=5\npolicy=0\nsched_priority=0\noom_score_adj=300\n"
                "cap_inh=0\ncap_prm=0\ncap_eff=0\ncap_amb=0\ncap_bnd=1ffffffffff\ngroups=10,20\n"
                "affinity=0,3,\n" +
                "".join("rlimit%d=%s\n" % (i, v) for i, v in enumerate(
                    ["18446744073709551615:18446744073709551615", "18446744073709551615:18446744073709551615",
                     "18446744073709551615:18446744073709551615", "8388608:18446744073709551615",
                     "0:18446744073709551615", "18446744073709551615:18446744073709551615",
                     "62834:62834", "2048:4096", "8388608:8388608",
                     "18446744073709551615:18446744073709551615", "62834:62834", "0:0", "819200:819200",
                     "0:0", "0:0", "18446744073709551615:18446744073709551615"])) +
                "cgroup=/sys/fs/cgroup/machine.slice/machine-qemu\\x2d1\\x2dvm1.scope/cgroup.procs\n")

CMDLINE = [
    "/usr/bin/qemu-system-x86_64", "-name", "guest=vm1,debug-threads=on", "-S",
    "-machine", "pc-q35-7.2,accel=kvm,usb=off,memory-backend=mem0",
    "-object", "memory-backend-memfd,id=mem0,size=1073741824,share=on", "-m", "1024",
    "-smp", "2,sockets=2,cores=1,threads=1", "-no-user-config", "-nodefaults",
    "-chardev", "socket,id=charmonitor,fd=23,server=on,wait=off",
    "-mon", "chardev=charmonitor,id=monitor,mode=control",
    "-qmp", "unix:/run/vm1.qmp,server=on,wait=off",
    "-netdev", "tap,id=net0,ifname=tap0,script=no,downscript=no,vhost=on",
    "-device", "virtio-net-pci,netdev=net0,id=net1,mac=52:54:00:12:34:56",
    "-drive", "file=/var/lib/vm1.qcow2,if=none,id=drive0,format=qcow2",
    "-device", "virtio-blk-pci,drive=drive0", "-display", "none", "-daemonize",
]

LAUNCH = (rec(HELLO, struct.pack("<II", 3, 0)) + rec(CWD, s("/")) + rec(CONTEXT, s(CONTEXT_TEXT)) +
          rec(ENV, s("PATH=/usr/local/bin:/usr/bin:/bin")) +
          b"".join(rec(ARG, s(w)) for w in CMDLINE[:8]) +
          rec(FD, fd_payload(3, "ram", "mem0", "size=1073741824\n"), FD_ELIDED) +
          rec(FD, fd_payload(23, "listener", "charmonitor", "path=/run/vm1.mon\n"), FD_ELIDED) +
          rec(FD, fd_payload(24, "tap", "net0", "ifname=tap0\nqueues=1\n"), FD_ELIDED) +
          rec(FD, fd_payload(0, "stdio", "stdin"), FD_ELIDED) + rec(EXEC))

NONCE = "5f" * 32
MAC = "a3" * 32
HANDSHAKE = (rec(HELLO, struct.pack("<II", 3, 0)) +
             rec(REPLY, s("agent=qemu-upgrade\nversion=3\nnonce=%s\n" % NONCE)) +
             rec(CALL, s("op=auth\nmac=%s\nnonce=%s\n" % (MAC, NONCE))) + rec(REPLY, s("mac=%s\n" % MAC)))
PROBE = "op=probe\nbinary=/usr/bin/qemu-system-x86_64\nmachine=pc-q35-7.2\n"
DISK = "op=disk\npath=/var/lib/vm1.qcow2\nformat=qcow2\nsize=10737418240\ndevice=drive0\n"
PROBE_REPLY = ("version=7.2.0\nversion_line=QEMU emulator version 7.2.0 (Debian 1:7.2+dfsg-7)\n"
               "machine=1\nmem_available=8589934592\n")
START_REPLY = ("pid=4242\nmigrate=tcp:10.0.0.2:49152\ntls=1\nnbd=10.0.0.2:10809\n"
               "ramblocks=pc.ram:134217728:134217728;/rom@etc/acpi/tables:131072:2097152;"
               "pc.bios:262144:262144;0000:00:01.0/virtio-net-pci.rom:262144:262144\n")
RESUME_REPLY = "resumed_us=1700000000123456\nannounced=1\ntls=1\n"

INFO_RAMBLOCK = (
    "              Block Name    PSize              Offset               Used              Total\r\n"
    "                  pc.ram    4 KiB  0x0000000000000000 0x0000000008000000 0x0000000008000000\r\n"
    "    /rom@etc/acpi/tables    4 KiB  0x00000000080c0000 0x0000000000020000 0x0000000000200000\r\n"
    "                 pc.bios    4 KiB  0x0000000008000000 0x0000000000040000 0x0000000000040000\r\n"
    "0000:00:01.0/virtio-net-pci.rom    4 KiB  0x0000000008080000 0x0000000000040000 0x0000000000040000\r\n"
    "                  pc.rom    4 KiB  0x0000000008040000 0x0000000000020000 0x0000000000020000\r\n")


def qmp(*msgs):
    return b"".join(json.dumps(m).encode() + b"\r\n" for m in msgs)


GREETING = {"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7"},
                    "capabilities": ["oob"]}}
TS = {"seconds": 1700000000, "microseconds": 123456}
QMP_ANSWERS = [  # one per reader of fuzz-qmp.c, in its order, ids from 2
    [{"return": {"status": "running", "singlestep": False, "running": True}}],
    [{"return": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7"}}],
    [{"return": [{"state": False, "capability": "xbzrle"}, {"state": True, "capability": "events"},
                 {"state": False, "capability": "x-ignore-shared"}, {"state": False, "capability": "postcopy-ram"},
                 {"state": False, "capability": "release-ram"}]},
     {"return": {"max-bandwidth": 134217728, "downtime-limit": 300, "tls-creds": "", "mode": "normal"}}],
    [{"return": INFO_RAMBLOCK}],
    [{"return": [{"device": "drive0", "locked": False, "removable": False, "type": "unknown",
                  "inserted": {"file": "/var/lib/vm1.qcow2", "drv": "qcow2", "ro": False, "node-name": "#block143",
                               "backing_file_depth": 0, "image": {"virtual-size": 10737418240}}},
                 {"device": "ide1-cd0", "locked": False, "removable": True, "type": "unknown"}]}],
    [{"return": []}],
    ["event", {"timestamp": TS, "event": "MIGRATION", "data": {"status": "completed"}}],
    ["event", {"timestamp": TS, "event": "RESUME"}],
    ["event", {"timestamp": TS, "event": "MIGRATION", "data": {"status": "completed"}}],
]


GREETING_11 = {"QMP": {"version": {"qemu": {"micro": 3, "minor": 1, "major": 11}, "package": "Debian 1:11.1.3+ds-1"},
                       "capabilities": ["oob"]}}
QUORUM_FILE = ('json:{"read-pattern": "fifo", "children": [{"driver": "qcow2", "file": {"driver": "file", '
               '"filename": "/var/lib/vm1/primary.qcow2"}}], "driver": "quorum", "vote-threshold": "1"}')
STANDBY_ANSWERS = [  # fuzz-standby.c: what an 11.1 VM in the measured form answers, in order
    {"return": {"last-mode": "none", "mode": "none", "reason": "none"}},
    {"return": [{"state": False, "capability": c} for c in ("x-colo", "return-path", "events", "x-ignore-shared")]},
    {"return": [{"name": n} for n in ("colo-compare", "filter-mirror", "filter-redirector", "filter-rewriter",
                                      "iothread", "memory-backend-memfd")]},
    {"return": [{"name": "type", "type": "string"}, {"name": "net0", "type": "child<virtio-net-pci>"}]},
    {"return": "hn0"},
    {"return": [{"name": "type", "type": "string"}, {"name": "device[0]", "type": "child<ivshmem-plain>"}]},
    {"error": {"class": "GenericError", "desc": "Property 'ivshmem-plain.netdev' not found"}},
    {"return": [{"device": "colo-disk0", "removable": False, "qdev": "/machine/unattached/device[13]",
                 "inserted": {"drv": "quorum", "ro": False, "node-name": "#block003", "file": QUORUM_FILE,
                              "children": [{"node-name": "#block227", "child": "children.0"}],
                              "image": {"virtual-size": 67108864}}},
                {"device": "ide1-cd0", "removable": True}]},
    {"return": [{"node-name": "#block227", "drv": "qcow2", "file": "/var/lib/vm1/primary.qcow2",
                 "backing_file_depth": 0, "image": {"virtual-size": 67108864}},
                {"node-name": "#block003", "drv": "quorum", "file": QUORUM_FILE}]},
    {"return": "ide-hd"},
]

# The same VM after it took over as a secondary (standby-disk-failback.t, 11.1.3): the quorum
# over the done replication node, the secondary's two graph drives beside it.
REPLICATION_FILE = ('json:{"driver": "replication", "mode": "secondary", "top-id": "colo-disk0", "file": '
                    '{"driver": "qcow2", "file": {"driver": "file", "filename": "/var/lib/vm1/primary.qcow2"}}}')
TAKEN_OVER_BLOCK = {"return": [
    {"device": "qu-colo-parent", "removable": True,
     "inserted": {"drv": "qcow2", "ro": False, "node-name": "#block143", "file": "/var/lib/vm1/primary.qcow2",
                  "backing_file_depth": 0, "image": {"virtual-size": 67108864}}},
    {"device": "qu-colo-childs", "removable": True,
     "inserted": {"drv": "replication", "ro": False, "node-name": "#block662", "file": REPLICATION_FILE}},
    {"device": "colo-disk0", "removable": False, "qdev": "/machine/unattached/device[13]",
     "inserted": {"drv": "quorum", "ro": False, "node-name": "#block723", "file": QUORUM_FILE,
                  "children": [{"node-name": "#block662", "child": "children.0"}],
                  "image": {"virtual-size": 67108864}}}]}
TAKEN_OVER_NODES = {"return": [
    {"node-name": "#block723", "drv": "quorum", "file": QUORUM_FILE},
    {"node-name": "#block662", "drv": "replication", "file": REPLICATION_FILE, "backing_file_depth": 0},
    {"node-name": "#block143", "drv": "qcow2", "file": "/var/lib/vm1/primary.qcow2", "backing_file_depth": 0,
     "image": {"virtual-size": 67108864}}]}


def standby_session(answers):
    return qmp(GREETING_11, {"return": {}, "id": 1}, *[dict(a, id=i + 2) for i, a in enumerate(answers)])


def qmp_session(first):
    msgs, ident = [GREETING, {"return": {}, "id": 1}], 2
    for i in range(len(QMP_ANSWERS)):
        answers = QMP_ANSWERS[(first + i) % len(QMP_ANSWERS)]
        if answers[0] == "event":
            msgs.append(answers[1])
            continue
        for a in answers:
            msgs.append(dict(a, id=ident))
            ident += 1
    return bytes([first]) + qmp(*msgs)


JOURNAL = {"version": 1, "phase": "migrating", "tool_pid": 4100, "old_pid": 4000, "old_start": 123456789,
           "new_pid": 4200, "new_start": 123456999, "was_running": True, "kill_old": False, "postcopy": False,
           "postcopy_asked": False, "remote": "", "mirrors": False, "tls": False, "qmp": "/run/vm1.qmp",
           "ctl": "/run/qemu-upgrade/4000.ctl", "pidfile": "/run/vm1.pid",
           "listeners": ["/run/vm1.qmp", "/run/vm1.mon"], "caps_saved": True, "old_ignore_shared": False,
           "old_events": False, "old_postcopy": False, "old_release_ram": False, "old_bandwidth": 134217728,
           "old_downtime_limit": 300, "old_mode": "normal", "old_tls_set": True, "old_tls_creds": ""}


def qmp_regress(first, *msgs):
    return bytes([first]) + qmp(GREETING, {"return": {}, "id": 1}, *msgs)


# Inputs that crashed the tool once (tests/fuzz/README.md): each run replays them first.
QMP_REGRESS = {
    "regress-migget-not-list": qmp_regress(2, {"return": None, "id": 2}),
    "regress-migget-cap-null": qmp_regress(2, {"return": [{"capability": None, "state": True}], "id": 2}),
    "regress-disks-not-list": qmp_regress(4, {"return": {}, "id": 2}),
    "regress-disks-device-null": qmp_regress(4, {"return": [{"device": None, "inserted": {"file": "/x"}}], "id": 2}),
    "regress-jobs-not-list": qmp_regress(5, {"return": "x", "id": 2}),
    "regress-jobs-device-null": qmp_regress(5, {"return": [{"device": None}], "id": 2}),
    "regress-event-null": qmp_regress(6, {"event": None}),
    "regress-event-status-null": qmp_regress(6, {"event": "MIGRATION", "data": {"status": None}}),
    "regress-event-time-overflow": qmp_regress(7, {"timestamp": {"seconds": 17000000200000000, "microseconds": 1},
                                                   "event": "RESUME"}),
    "regress-jobs-offset-overflow": qmp_regress(5, {"return": [{"device": "qemu-upgrade-mirror-drive0",
                                                                "offset": 2 ** 63 - 1, "len": 2 ** 63 - 1}] * 2,
                                                    "id": 2}),
}

SEEDS = {
    "stream": {
        "launch": b"\x01" + LAUNCH,
        "launch-raw-crc": b"\x00" + LAUNCH,
        "started": b"\x01" + rec(STARTED, struct.pack("<I", 4242)) + rec(END),
        "error": b"\x01" + rec(ERROR, struct.pack("<I", 2) + s("cannot execute /usr/bin/qemu-system-x86_64")),
        "handshake": b"\x01" + HANDSHAKE,
        "sealed": b"\x01" + sealed(rec(CALL, s(PROBE))) + sealed(rec(REPLY, s(START_REPLY))) + sealed(rec(END)),
    },
    "stream-recv": {
        "launch": b"\x01" + LAUNCH,
        "sealed": b"\x03" + sealed(rec(CALL, s(PROBE))) + sealed(rec(FD, fd_payload(3, "ram", "mem0", "size=1\n"), 1)),
        "fd-first": b"\x05" + rec(FD, fd_payload(3, "ram", "mem0")) + rec(ARG, s("-S")) + rec(END),
        "fd-on-arg": b"\x05" + rec(ARG, s("/usr/bin/qemu-system-x86_64")) + rec(END),
        "handshake": b"\x01" + HANDSHAKE,
    },
    "kv": {
        "probe": ("op\n" + PROBE).encode(),
        "nonce": ("nonce\nagent=qemu-upgrade\nversion=3\nnonce=%s\n" % NONCE).encode(),
        "start": ("ramblocks\n" + START_REPLY).encode(),
        "size": b"size\npath=/dev/shm/vm1\nsize=4294967296\n",
    },
    "fdspec": {
        "ram": fd_payload(3, "ram", "mem0", "size=1073741824\npath=/dev/shm/vm1\n"),
        "tap": fd_payload(24, "tap", "net0", "ifname=tap0\nqueues=2\n"),
        "listener": fd_payload(23, "listener", "/run/vm1.qmp", "path=/run/vm1.qmp\n"),
        "no-spec": fd_payload(0, "stdio", "stdin"),
    },
    "context": {
        "vm": CONTEXT_TEXT.encode(),
        "root": b"uid=0\ngid=0\numask=22\nnice=0\npolicy=0\nsched_priority=0\noom_score_adj=0\ngroups=\naffinity=0,1,\n",
        "rt": b"uid=64055\ngid=64055\npolicy=2\nsched_priority=10\ncap_amb=400\ncap_prm=400\nrlimit7=1024:1048576\n",
    },
    "opts": {
        "chardev": b"\x02socket,id=charmonitor,path=/run/vm1.mon,server=on,wait=off",
        "machine": b"\x01pc-q35-7.2,accel=kvm,usb=off,memory-backend=mem0",
        "netdev": b"\x01tap,id=net0,ifname=tap0,script=no,downscript=no,vhost=on",
        "escaped": b"\x02file,id=log,path=/var/log/a,,b.log,append",
        "object": b"\x00memory-backend-file,id=mem0,size=4G,share=on,mem-path=/dev/shm/vm1",
        "drive": b"\x03file=/var/lib/vm1.qcow2,if=none,id=drive0,format=qcow2",
    },
    "netdev": {
        "libvirt": b'{"type":"tap","fd":"25","vhost":true,"vhostfd":"27","id":"hostnet0"}',
        "libvirt-mq": b'{"type":"tap","fds":"25:26","vhost":true,"vhostfds":"27:28","id":"hostnet0"}',
        "proxmox": (b"type=tap,id=net0,ifname=tap100i0,script=/var/lib/qemu-server/pve-bridge,"
                    b"downscript=/var/lib/qemu-server/pve-bridgedown,vhost=on"),
        "rewritten": b"tap,id=n0,fds=5:6,vhostfds=7:8",
        "socket": b"socket,id=n0,fd=9",
    },
    "argv": {
        "libvirt-like": b"\0".join(w.encode() for w in CMDLINE) + b"\0",
        "flags": b"qemu\0-S\0-nodefaults\0-daemonize\0--enable-kvm\0-no-shutdown\0-m\0" b"512\0",
        "json-object": (b"/usr/bin/qemu-system-x86_64\0-S\0-name\0guest=vm1\0-machine\0q35,accel=kvm\0"
                        b"-nodefaults\0disk.img\0-object\0"
                        b"{\"qom-type\":\"memory-backend-memfd\",\"id\":\"mem0\"}\0-append\0\0"),
        "cut-short": b"qemu\0-name\0vm",
    },
    "ramblocks": {
        "info-7.2": b"\x00" + INFO_RAMBLOCK.encode(),
        "packed": b"\x01" + START_REPLY.split("ramblocks=")[1].strip().encode(),
        "not-a-table": b"\x00unknown command: 'info ramblock'\r\n",
    },
    "qmp": dict({"session-%d" % i: qmp_session(i) for i in (0, 2, 3, 4, 6)}, **QMP_REGRESS),
    "standby": {
        "measured-form": standby_session(STANDBY_ANSWERS),
        "not-a-quorum": standby_session(STANDBY_ANSWERS[:7] + [{"return": [{"device": "disk1", "qdev": "/x",
            "inserted": {"drv": "qcow2", "file": "/var/lib/vm1/plain.qcow2"}}]}] + STANDBY_ANSWERS[8:]),
        "hostile-names": standby_session(STANDBY_ANSWERS[:3] + [{"return": [{"name": "x" * 300, "type": "child<" + "v" * 100 + ">"},
            {"name": None, "type": "child<>"}]}, {"return": None}] + STANDBY_ANSWERS[5:]),
        "taken-over": standby_session(STANDBY_ANSWERS[:7] + [TAKEN_OVER_BLOCK, TAKEN_OVER_NODES] + STANDBY_ANSWERS[9:]),
        "vote-not-a-number": standby_session(STANDBY_ANSWERS[:7] + [{"return": [{"device": "d", "inserted": {"drv": "quorum",
            "file": 'json:{"vote-threshold": {"x": 1}}', "children": "no"}}]}] + STANDBY_ANSWERS[8:]),
    },
    "colo-disk": {
        "quorum": b"op=colo_disk\nactive_fd=9\nhidden_fd=10\nsize=67108864\n\0"
                  b"if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,"
                  b"children.0.file.filename=/vm/primary.qcow2,children.0.driver=qcow2",
        "not-quorum": b"op=colo_disk\nactive_fd=2\nhidden_fd=2\nsize=0\n\0if=virtio,id=colo-disk0,file=/vm/a.qcow2",
        "escaped": b"active_fd=258\nhidden_fd=3\nsize=70368744177664\n\0"
                   b"if=ide,id=colo-disk0,driver=quorum,vote-threshold=1,children.0.file.filename=/a,,b,children.0.driver=raw",
        "graph-part": b"op=colo_disk\n\0if=none,id=qu-colo-parent,driver=qcow2,file.filename=/vm/a",
    },
    "stderr-log": {  # fuzz-stderr-log.c: a secondary's stderr, bytes below 8 end a write
        "warnings": b"qemu-system-x86_64: -mon chardev=qemu-upgrade-mon12,mode=control: warning: x\n"
                    b"Can't receive COLO message: Input/output error\n",
        "control": b"forged\x1b[2K\r\nline\x7f\x01two\n\x02partial",
        "long": b"x" * 1000 + b"\n" + b"0123456789\n" * 50,
    },
    "colo-wire": {
        "listening": standby_session([{"return": {}}] * 6 + [
            {"return": [{"label": "qu-colo-in", "filename": "disconnected:tcp:10.0.0.2:41235,server=on", "frontend-open": False}]},
            {"return": [{"label": "qu-colo-in", "filename": "disconnected:tcp:10.0.0.2:41235,server=on"},
                        {"label": "qu-colo-out", "filename": "disconnected:tcp:[::1]:41236,server=on"}]}]),
        "no-port": standby_session([{"return": {}}] * 6 + [
            {"return": [{"label": "qu-colo-in", "filename": "disconnected:tcp:10.0.0.2:,server=on"}]},
            {"return": [{"label": "qu-colo-out", "filename": "tcp:" + "9" * 300}]}]),
        "refused": standby_session([{"return": {}}, {"error": {"class": "GenericError", "desc": "x" * 500}}]),
    },
    "config": {
        "shipped": open(os.path.join(HERE, "../../qemu-integration/hooks/qemu-upgrade.conf"), "rb").read(),
        "exclude": b"enabled = on\njobs = 8\nexclude = vm1 vm2, 1234\t# not these\nallow_copy = yes\nlow_memory = 1\n",
        "bad-line": b"jobs 4\n",
        "agent-policy": b"agent_binaries = /usr/bin/qemu-system-x86_64, /opt//q/bin/qemu-system-x86_64\n"
                        b"agent_users = libvirt-qemu 1000\nagent_allow_root = yes\n"
                        b"agent_dirs = /var/lib/libvirt/qemu/ /run/vms /\nagent_users = root\n",
    },
    "journal": {
        "migrating": json.dumps(JOURNAL, indent=2).encode() + b"\n",
        "remote": json.dumps(dict(JOURNAL, phase="resuming", new_pid=0, remote="10.0.0.2:4779", mirrors=True,
                                  tls=True, old_tls_set=True, old_tls_creds="qemu-upgrade-tls")).encode() + b"\n",
        "truncated": json.dumps(JOURNAL).encode()[:200],
        "regress-listeners-false": json.dumps(dict(JOURNAL, listeners=False)).encode() + b"\n",
    },
    "agent": {
        "session": b"\x01" + (rec(CONTEXT, s(CONTEXT_TEXT)) + rec(ENV, s("PATH=/usr/bin:/bin")) +
                              b"".join(rec(ARG, s(w)) for w in CMDLINE[:10]) + rec(CWD, s("/")) +
                              rec(FD, fd_payload(3, "ram", "mem0", "size=1073741824\n"), FD_ELIDED) +
                              rec(FD, fd_payload(24, "tap", "net0", "ifname=tap0\nqueues=1\n"), FD_ELIDED) +
                              rec(CALL, s(DISK)) + rec(CALL, s("op=tls\non=0\n")) + rec(EXEC) + rec(END)),
        "bad-fd": b"\x01" + rec(FD, fd_payload(300, "ram", "mem0", "size=1\n"), FD_ELIDED),
        "tls-psk": b"\x01" + rec(CALL, s("op=tls\non=1\npsk=" + "0123456789abcdef" * 4 + "\n")) + rec(END),
    },
    "remote-client": {
        "all": b"\x04" + (rec(REPLY, s(PROBE_REPLY)) + rec(REPLY, s(START_REPLY)) + rec(REPLY, s(RESUME_REPLY)) +
                          rec(ERROR, struct.pack("<I", 125) + s("the tool called the upgrade off"))),
        "start-error": b"\x05" + rec(ERROR, struct.pack("<I", 28) + s("no room for the guest's RAM here")),
        "resume-unannounced": b"\x06" + rec(REPLY, s("resumed_us=1\nannounced=0\ntls=0\nannounce_error=no MACs\n")),
    },
    "ssh-uri": {
        "user-host-port": b"\x00ssh://root@host2.example.org:2222",
        "host": b"\x00ssh://10.0.0.2",
        "ipv6": b"\x00ssh://root@[fd00::2]:22",
        "hostile": b"\x00ssh://-oProxyCommand=sh",
        "connection-v4": b"\x0110.77.0.1 47002 10.77.0.2 22",
        "connection-v6": b"\x01fd00::1 47002 fd00::2 22",
    },
}

for target, files in SEEDS.items():
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
