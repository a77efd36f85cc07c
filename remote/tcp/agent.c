#include "qemu-upgrade.h"
#include "remote/target.h"
#include "remote/tcp/seal.h"
#include "remote/tcp/transport.h"
#include "upgrade/clock.h"
#include "upgrade/io.h"
#include "upgrade/journal.h"
#include "upgrade/kv.h"
#include "upgrade/log.h"
#include "upgrade/sandbox.h"
#include "upgrade/stream.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Between two records of one upgrade the tool may mirror disks for a long time. */
#define IDLE_TIMEOUT_US (6ull * 3600 * 1000000u)
/* Starting, or resuming, the new QEMU. */
#define STEP_TIMEOUT_US (120ull * 1000000u)
#define REPLY_MAX 4096
/* Upgrades served at once (each a process); more connections are told to come back. */
#define MAX_SESSIONS 32

static int send_reply(int sock, const char *text)
{
	return qu_stream_send_str(sock, QU_REC_REPLY, text);
}

static int fail(int sock, int r)
{
	qu_info("agent: %s", qu_err_msg());
	qu_stream_send_error(sock, r < 0 ? -r : EIO, qu_err_msg());
	return r;
}

/* What the handshake's unprivileged half learned from the tool: fixed size, and checked field
 * by field by the half that holds the key. */
struct preauth {
	int ok;                                    /* 0: it failed (and told the tool why) */
	char tool_nonce[2 * QU_AUTH_NONCE_LEN + 1];
	char mac[QU_AUTH_HEX_LEN];
};

/* The bytes of a peer not yet authenticated are read by a child that is nobody, holds no key
 * (key: the session's copy, QU_AUTH_KEY_MAX bytes, wiped here) and runs under a seccomp allow list (upgrade/sandbox.h): HELLO, our nonce, the tool's proof.
 * A peer that takes it over gains a process that can only read and write this connection. */
static void preauth_child(int sock, int report, const char *nonce, unsigned char *key)
{
	struct preauth pa;
	struct qu_rec rec;
	char text[512];
	memset(&pa, 0, sizeof(pa));
	/* Its one copy in this process goes before the first byte is read. */
	explicit_bzero(key, QU_AUTH_KEY_MAX);
	if (qu_sandbox_preauth() < 0) {
		fail(sock, -EPERM);
		_exit(1);
	}
	int r = qu_stream_recv(sock, qu_now_us() + 30000000u, &rec);
	if (r < 0)
		_exit(1);
	uint32_t version = rec.type == QU_REC_HELLO ? qu_get_u32(rec.payload) : 0;
	qu_rec_free(&rec);
	if (version != QU_STREAM_VERSION) {
		fail(sock, qu_err(-EPROTO, "the tool speaks handover stream version %u and this agent %u: "
				  "install the same qemu-upgrade on both hosts", version, QU_STREAM_VERSION));
		_exit(1);
	}
	text[0] = '\0';
	qu_kv_add(text, sizeof(text), "agent", "qemu-upgrade");
	qu_kv_addf(text, sizeof(text), "version", "%u", QU_STREAM_VERSION);
	qu_kv_add(text, sizeof(text), "nonce", nonce);
	if (send_reply(sock, text) < 0 || qu_stream_recv(sock, qu_now_us() + 30000000u, &rec) < 0)
		_exit(1);
	const char *call = rec.type == QU_REC_CALL ? (const char *)rec.payload : "";
	pa.ok = qu_kv_get(call, "mac", pa.mac, sizeof(pa.mac)) == 0 &&
		qu_kv_get(call, "nonce", pa.tool_nonce, sizeof(pa.tool_nonce)) == 0;
	qu_rec_free(&rec);
	_exit(qu_write_full(report, &pa, sizeof(pa)) == 0 ? 0 : 1);
}

static int hex_of_len(const char *s, size_t size, size_t len)
{
	return memchr(s, '\0', size) && strlen(s) == len && strspn(s, "0123456789abcdef") == len;
}

/* HELLO, the agent's nonce, the tool's proof and nonce (read by preauth_child), the agent's
 * proof; then the connection is sealed under the session key both can derive. */
static int handshake(int sock, const unsigned char *key, size_t keylen, struct qu_seal *seal)
{
	char nonce[2 * QU_AUTH_NONCE_LEN + 1], text[512], mac[QU_AUTH_HEX_LEN];
	int p[2];
	if (qu_auth_nonce(nonce, QU_AUTH_NONCE_LEN) < 0)
		return fail(sock, qu_err(-EIO, "no random numbers"));
	if (pipe2(p, O_CLOEXEC) < 0)
		return fail(sock, qu_err(-errno, "pipe: %s", strerror(errno)));
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		preauth_child(sock, p[1], nonce, (unsigned char *)key);
	}
	close(p[1]);
	struct preauth pa;
	ssize_t n = pid > 0 ? qu_read_full(p[0], &pa, sizeof(pa)) : -1;
	close(p[0]);
	int status = 0;
	if (pid > 0)
		waitpid(pid, &status, 0);
	if (pid < 0)
		return fail(sock, qu_err(-errno, "fork: %s", strerror(errno)));
	if (WIFSIGNALED(status))
		qu_info("agent: the handshake's sandbox killed its process (signal %d): the peer sent what no "
			"handshake needs", WTERMSIG(status));
	if (n != (ssize_t)sizeof(pa) || !pa.ok)
		return -EPROTO; /* the child told the tool why, or the peer went away */
	int ok = hex_of_len(pa.tool_nonce, sizeof(pa.tool_nonce), 2 * QU_AUTH_NONCE_LEN) &&
		 hex_of_len(pa.mac, sizeof(pa.mac), QU_AUTH_HEX_LEN - 1) &&
		 qu_auth_mac(key, keylen, "tool", nonce, mac) == 0 && qu_auth_equal(mac, pa.mac);
	if (!ok)
		return fail(sock, qu_err(-EACCES, "authentication failed: the tool's key is not this agent's "
					 "(both hosts need the same key file, see --remote-key)"));
	if (qu_auth_mac(key, keylen, "agent", pa.tool_nonce, mac) < 0)
		return fail(sock, qu_err(-EIO, "HMAC failed"));
	text[0] = '\0';
	qu_kv_add(text, sizeof(text), "mac", mac);
	int r;
	if ((r = send_reply(sock, text)) < 0 || (r = qu_seal_init(seal, key, keylen, nonce, pa.tool_nonce, 0)) < 0)
		return r;
	return qu_stream_set_sealer(sock, &seal->base);
}

/* One upgrade: records until END, or until the tool goes away (then a new QEMU that was not
 * resumed is stopped and what was made for it removed). */
static int serve(int sock, const unsigned char *key, size_t keylen)
{
	char host[80], reply[REPLY_MAX], op[32];
	struct qu_seal seal;
	int r = handshake(sock, key, keylen, &seal);
	if (r < 0)
		return r;
	if ((r = qu_tcp_local_host(sock, host, sizeof(host))) < 0)
		return r;
	struct qu_target *t = qu_target_new();
	if (!t)
		return -ENOMEM;
	qu_target_tls(t, "", &seal); /* on unless the tool says otherwise */
	for (;;) {
		struct qu_rec rec;
		if ((r = qu_stream_recv(sock, qu_now_us() + IDLE_TIMEOUT_US, &rec)) < 0) {
			qu_info("agent: the tool went away (%s)", strerror(-r));
			break;
		}
		reply[0] = '\0';
		if (rec.type == QU_REC_END) {
			qu_rec_free(&rec);
			r = 0;
			break;
		}
		if (!t) {
			/* After a failure (its new QEMU stopped already) only a late abort is answered. */
			qu_kv_get(rec.type == QU_REC_CALL ? (const char *)rec.payload : "", "op", op, sizeof(op));
			if (!strcmp(op, "abort"))
				r = send_reply(sock, "ok=1\n");
			else
				r = qu_stream_send_error(sock, EBADMSG, "this upgrade failed already: start a new one");
			qu_rec_free(&rec);
			if (r < 0)
				break;
			continue;
		}
		if (rec.type == QU_REC_EXEC) {
			r = qu_target_start(t, host, qu_now_us() + STEP_TIMEOUT_US, reply, sizeof(reply));
		} else if (rec.type == QU_REC_CALL) {
			const char *call = (const char *)rec.payload;
			qu_kv_get(call, "op", op, sizeof(op));
			if (!strcmp(op, "probe"))
				r = qu_target_probe(t, call, qu_now_us() + STEP_TIMEOUT_US, reply, sizeof(reply));
			else if (!strcmp(op, "disk"))
				r = qu_target_disk(t, call);
			else if (!strcmp(op, "tls"))
				r = qu_target_tls(t, call, &seal);
			else if (!strcmp(op, "resume"))
				r = qu_target_resume(t, qu_now_us() + STEP_TIMEOUT_US, reply, sizeof(reply));
			else if (!strcmp(op, "abort"))
				r = qu_err(-ECANCELED, "the tool called the upgrade off");
			else
				r = qu_err(-EBADMSG, "unknown request '%s'", op);
			if (r == 0 && strcmp(op, "disk") && strcmp(op, "tls") && !reply[0])
				qu_kv_add(reply, sizeof(reply), "ok", "1");
		} else {
			r = qu_target_add(t, &rec);
			if (r < 0)
				qu_err(r, "bad %s record: %s", qu_rec_type_name(rec.type), strerror(-r));
		}
		qu_rec_free(&rec);
		if (r < 0) {
			/* Past the `cont` the guest may run here: the tool must never resume its old QEMU,
			 * and this one stays. Before it, the new QEMU goes at once. */
			if (qu_target_resumed(t)) {
				fail(sock, -ENOTRECOVERABLE);
				break;
			}
			/* The answer comes once the new QEMU is gone and its files removed: the tool
			 * resumes the old one on it (shared storage: the image's lock must be free). */
			qu_target_free(t);
			t = NULL;
			fail(sock, r);
			continue;
		}
		if (reply[0] && (r = send_reply(sock, reply)) < 0)
			break;
	}
	qu_target_free(t);
	return r;
}

/* New QEMUs live in the agent's cgroup: a systemd service that kills its whole control group
 * when stopped or restarted would take every guest that moved here with it. */
static void warn_if_service(void)
{
	char *text = NULL;
	if (qu_read_file("/proc/self/cgroup", &text, NULL) < 0)
		return;
	char *nl = strrchr(text, '\n');
	while (nl && nl > text && !nl[1]) {
		*nl = '\0';
		nl = strrchr(text, '\n');
	}
	size_t n = strlen(text);
	if (n > 8 && !strcmp(text + n - 8, ".service"))
		qu_info("agent: warning: running in a systemd service (%s): the QEMUs started here live in its "
			"cgroup; set KillMode=process (as qemu-upgrade-agent.service does), or stopping the "
			"service kills every guest that moved here", strrchr(text, '/') ? strrchr(text, '/') + 1 : text);
	free(text);
}

static void keepalive(int fd)
{
	int on = 1, idle = 10, intvl = 5, cnt = 3;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

/* A session that ended: reaped, and what it left undone (killed, out of memory) undone. */
static void session_ended(pid_t pid, int status)
{
	char what[256];
	if (qu_target_cleanup_session(pid, what, sizeof(what)) > 0)
		qu_info("agent: %s (%s %d)", what, WIFSIGNALED(status) ? "signal" : "exit",
			WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

/* Records of sessions of an agent that died before it could clean up after them. */
static void sweep_records(void)
{
	DIR *d = opendir(qu_state_dir());
	if (!d)
		return;
	for (struct dirent *e; (e = readdir(d));) {
		int pid;
		char tail[16], what[256];
		if (sscanf(e->d_name, "agent-%d.%15s", &pid, tail) == 2 && !strcmp(tail, "session") &&
		    (kill(pid, 0) < 0 && errno == ESRCH) && qu_target_cleanup_session(pid, what, sizeof(what)) > 0)
			qu_info("agent: %s", what);
	}
	closedir(d);
}

int qu_agent_run(const char *listen_addr, const char *key_path, unsigned flags)
{
	unsigned char key[QU_AUTH_KEY_MAX];
	size_t keylen;
	pid_t sessions[MAX_SESSIONS];
	size_t nsessions = 0;
	int once = !!(flags & QU_AGENT_ONCE);
	if (flags & ~QU_AGENT_ONCE) {
		qu_err(-EINVAL, "unknown flags 0x%x", flags & ~QU_AGENT_ONCE);
		return -1;
	}
	if (!listen_addr)
		listen_addr = "4779";
	if (!key_path)
		key_path = QU_AGENT_KEY;
	int r = qu_auth_key_load(key_path, key, &keylen);
	if (r < 0)
		return -1;
	int lfd = qu_tcp_listen(listen_addr, QU_AGENT_PORT);
	if (lfd < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	sweep_records();
	warn_if_service();
	qu_info("agent: listening on %s", listen_addr);
	for (;;) {
		/* Reap ended sessions (the QEMUs they started are not our children: they go to the
		 * init process when their session ends). */
		int status;
		pid_t done;
		while ((done = waitpid(-1, &status, WNOHANG)) > 0) {
			session_ended(done, status);
			for (size_t i = 0; i < nsessions; i++)
				if (sessions[i] == done)
					sessions[i] = sessions[--nsessions];
			if (once) {
				close(lfd);
				return 0;
			}
		}
		if (qu_poll_one(lfd, POLLIN, qu_now_us() + 500000u) == -ETIMEDOUT)
			continue;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EMFILE && errno != ENFILE && errno != ENOBUFS && errno != ENOMEM)
				continue; /* the peer's trouble (reset, aborted, ...) */
			qu_info("agent: accept: %s", strerror(errno));
			usleep(100000);
			continue;
		}
		if (nsessions == MAX_SESSIONS) {
			qu_stream_send_error(fd, EBUSY, "the agent serves as many upgrades as it may at once: try again later");
			close(fd);
			continue;
		}
		keepalive(fd);
		pid_t pid = fork();
		if (pid == 0) {
			close(lfd);
			_exit(serve(fd, key, keylen) < 0 ? 1 : 0);
		}
		close(fd);
		if (pid < 0)
			qu_info("agent: fork: %s", strerror(errno));
		else
			sessions[nsessions++] = pid;
	}
}
