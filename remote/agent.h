/* `qemu-upgrade agent`: the destination host's end of `--remote`. Its transport
 * (remote/tcp/server.h) listens, proves with the shared key that it and the tool belong
 * together and serves each connection in a process of its own; the session server
 * (remote/session.h) does the upgrade; the sessions' records (remote/record.h) let it clean
 * up after a session that died. docs/remote.md has the protocol. */
#ifndef QU_REMOTE_AGENT_H
#define QU_REMOTE_AGENT_H

/* What the public qu_agent_run() (upgrade/api.c) runs, its defaults filled in. Serves until
 * killed (or, with once, after one connection). Returns -1 with a message when it cannot
 * start (no key, cannot listen). */
int qu_agent_serve(const char *listen_addr, const char *key_path, int once);

#endif
