/* The relay that keeps a VM's pty across upgrades: it holds the pty master and passes bytes
 * between it and a connected socket whose other end the QEMU of the day has. It lives as
 * long as some QEMU holds that socket (each upgrade carries the socket on), and behaves as
 * QEMU's own pty backend does when nobody holds the pty's other end: what the guest writes
 * is dropped, not queued, and it does not spin waiting (it looks again every 100 ms). */
#ifndef QU_PTYRELAY_H
#define QU_PTYRELAY_H

/* Starts a detached relay (it is not a child of the caller) between master and sock; the
 * caller keeps its own copies. The relay waits until a byte arrives on go (the commit
 * point: until then the old QEMU reads the pty, and keystrokes must not go to a new QEMU
 * that has no state yet); if go closes without one (a rollback), it ends. Returns 0 or
 * -errno with a message. */
struct qu_context;
/* ctx: the VM's process context; the relay joins its cgroups and takes its user and group
 * (best effort: where that fails it stays as it is). */
int qu_ptyrelay_start(int master, int sock, int go, const struct qu_context *ctx);

#endif
