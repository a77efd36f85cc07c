#include "remote/tcp/handshake.h"
#include "remote/tcp/transport.h"
#include "upgrade/clock.h"
#include "upgrade/io.h"
#include "upgrade/kv.h"
#include "upgrade/log.h"
#include "upgrade/sandbox.h"
#include "upgrade/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* What the handshake's unprivileged half learned from the tool: fixed size, and checked field
 * by field by the half that holds the key. */
struct preauth {
	int ok;                                    /* 0: it failed (and told the tool why) */
	char tool_nonce[2 * QU_AUTH_NONCE_LEN + 1];
	char mac[QU_AUTH_HEX_LEN];
};

/* The bytes of a peer not yet authenticated are read by a child that is nobody, holds no key
 * (key: the session's copy, QU_AUTH_KEY_MAX bytes, wiped here) and runs under a seccomp allow
 * list (upgrade/sandbox.h): HELLO, our nonce, the tool's proof. A peer that takes it over
 * gains a process that can only read and write this connection. */
static void preauth_child(int sock, int report, const char *nonce, unsigned char *key)
{
	struct preauth pa;
	struct qu_rec rec;
	char text[512];
	memset(&pa, 0, sizeof(pa));
	/* Its one copy in this process goes before the first byte is read. */
	explicit_bzero(key, QU_AUTH_KEY_MAX);
	if (qu_sandbox_preauth() < 0) {
		qu_stream_send_failure(sock, "agent", -EPERM);
		_exit(1);
	}
	int r = qu_stream_recv(sock, qu_now_us() + 30000000u, &rec);
	if (r < 0)
		_exit(1);
	uint32_t version = rec.type == QU_REC_HELLO ? qu_get_u32(rec.payload) : 0;
	qu_rec_free(&rec);
	if (version != QU_STREAM_VERSION) {
		int e = qu_err(-EPROTO, "the tool speaks handover stream version %u and this agent %u: "
			       "install the same qemu-upgrade on both hosts", version, QU_STREAM_VERSION);
		qu_stream_send_failure(sock, "agent", e);
		_exit(1);
	}
	text[0] = '\0';
	qu_kv_add(text, sizeof(text), "agent", "qemu-upgrade");
	qu_kv_addf(text, sizeof(text), "version", "%u", QU_STREAM_VERSION);
	qu_kv_add(text, sizeof(text), "nonce", nonce);
	if (qu_stream_send_str(sock, QU_REC_REPLY, text) < 0 || qu_stream_recv(sock, qu_now_us() + 30000000u, &rec) < 0)
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

/* The tool's proof and nonce are read by preauth_child; the key never enters that process. */
int qu_handshake_agent(int sock, const unsigned char *key, size_t keylen, struct qu_seal *seal)
{
	char nonce[2 * QU_AUTH_NONCE_LEN + 1], text[512], mac[QU_AUTH_HEX_LEN];
	int p[2];
	if (qu_auth_nonce(nonce, QU_AUTH_NONCE_LEN) < 0)
		return qu_stream_send_failure(sock, "agent", qu_err(-EIO, "no random numbers"));
	if (pipe2(p, O_CLOEXEC) < 0)
		return qu_stream_send_failure(sock, "agent", qu_err(-errno, "pipe: %s", strerror(errno)));
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
		return qu_stream_send_failure(sock, "agent", qu_err(-errno, "fork: %s", strerror(errno)));
	if (WIFSIGNALED(status))
		qu_info("agent: the handshake's sandbox killed its process (signal %d): the peer sent what no "
			"handshake needs", WTERMSIG(status));
	if (n != (ssize_t)sizeof(pa) || !pa.ok)
		return -EPROTO; /* the child told the tool why, or the peer went away */
	int ok = hex_of_len(pa.tool_nonce, sizeof(pa.tool_nonce), 2 * QU_AUTH_NONCE_LEN) &&
		 hex_of_len(pa.mac, sizeof(pa.mac), QU_AUTH_HEX_LEN - 1) &&
		 qu_auth_mac(key, keylen, "tool", nonce, mac) == 0 && qu_auth_equal(mac, pa.mac);
	if (!ok)
		return qu_stream_send_failure(sock, "agent", qu_err(-EACCES, "authentication failed: the tool's key "
								   "is not this agent's (both hosts need the same key file, see --remote-key)"));
	if (qu_auth_mac(key, keylen, "agent", pa.tool_nonce, mac) < 0)
		return qu_stream_send_failure(sock, "agent", qu_err(-EIO, "HMAC failed"));
	text[0] = '\0';
	qu_kv_add(text, sizeof(text), "mac", mac);
	int r;
	if ((r = qu_stream_send_str(sock, QU_REC_REPLY, text)) < 0 ||
	    (r = qu_seal_init(seal, key, keylen, nonce, pa.tool_nonce, 0)) < 0)
		return r;
	return qu_stream_set_sealer(sock, &seal->base);
}
