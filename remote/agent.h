/* `qemu-upgrade agent`: the destination host's end of `--remote`. Its transport is ssh
 * (remote/ssh/stdio.h: sshd runs it for one session on stdin/stdout) or the TLS daemon
 * (remote/tcp/server.h: it listens, runs TLS 1.3 with x509 certificates both ways, lets in the
 * tools its policy names and serves each connection in a process of its own); the session server
 * (remote/session.h) does the upgrade; the sessions' records (remote/record.h) let it clean
 * up after a session that died. docs/remote.md has the protocol. */
#ifndef QU_REMOTE_AGENT_H
#define QU_REMOTE_AGENT_H

/* What the public qu_agent_run() (upgrade/api.c) runs, its defaults filled in. Serves until
 * killed (or, with once, after one connection). Returns -1 with a message when it cannot
 * start (a certificate missing or unsafe, cannot listen). */
int qu_agent_serve(const char *listen_addr, const char *pki_dir, int once);
/* `qemu-upgrade agent --stdio`: one session on stdin/stdout, over ssh (remote/ssh/stdio.h).
 * Returns when it ended (0), or -1 with a message when it cannot start. */
int qu_agent_stdio(void);

#endif
