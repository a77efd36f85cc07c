#include "remote/client.h"
#include "remote/ssh/connect.h"
#include "remote/tcp/transport.h"
#include "remote/x509/creds.h"
#include "remote/x509/relay.h"
#include "upgrade/clock.h"
#include "upgrade/io.h"
#include "upgrade/kv.h"
#include "upgrade/log.h"
#include "upgrade/stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEXT_MAX 4096
#define QU_REFUSAL_TEXT_MAX 1024

static void hang_up(struct qu_remote *r)
{
	qu_close(&r->sock);
}

/* Once the stream broke: how long ssh may take to say why and exit. */
#define SSH_LAST_WORDS_US (3ull * 1000000u)

/* ssh's last lines on stderr ("Host key verification failed.", the agent's last log line),
 * for an error: "; ssh: ..." or "". When the stream broke (not a timeout) ssh is ending:
 * it gets a moment to finish saying why. */
static void ssh_said(struct qu_remote *r, int e, char *buf, size_t len)
{
	char said[1024];
	buf[0] = '\0';
	if (!r->ssh)
		return;
	qu_ssh_drain(r->ssh, e == -ETIMEDOUT || e == -ECANCELED ? 0 : qu_now_us() + SSH_LAST_WORDS_US);
	qu_ssh_said(r->ssh, 3, said, sizeof(said));
	if (said[0])
		snprintf(buf, len, "; ssh: %s", said);
}

/* Waits for the agent's REPLY (its text into buf) or ERROR (-errno, with its message). */
static int await_reply(struct qu_remote *r, uint64_t deadline_us, char *buf, size_t len)
{
	struct qu_rec rec;
	char said[1100];
	if (r->sock < 0)
		return qu_err(-ENOTCONN, "the connection to the agent on %s is closed", r->host);
	int e = qu_stream_recv(r->sock, deadline_us, &rec);
	if (r->ssh)
		qu_ssh_drain(r->ssh, 0); /* its stderr pipe never fills */
	if (e < 0) {
		/* A late answer would be taken for the next one's: hang up instead (the agent
		 * stops a new QEMU it did not resume when the connection ends). */
		hang_up(r);
		ssh_said(r, e, said, sizeof(said));
		return qu_err(e, "no answer from the agent on %s: %s%s", r->host,
			      r->ssh && e == -ECONNRESET ? "the connection ended" : strerror(-e), said);
	}
	if (rec.type == QU_REC_REPLY) {
		snprintf(buf, len, "%s", (const char *)rec.payload);
		e = 0;
	} else if (rec.type == QU_REC_ERROR) {
		r->agent_said = 1;
		uint32_t code = qu_get_u32(rec.payload);
		e = code >= 1 && code < 4096 ? -(int)code : -EIO;
		e = qu_err(e ? e : -EIO, "agent on %s: %s", r->host, (const char *)rec.payload + 4);
	} else {
		e = qu_err(-EBADMSG, "agent on %s: unexpected %s record", r->host, qu_rec_type_name(rec.type));
	}
	qu_rec_free(&rec);
	return e;
}

static int call(struct qu_remote *r, const char *text, uint64_t deadline_us, char *buf, size_t len)
{
	char said[1100];
	int e = r->sock < 0 ? -ENOTCONN : qu_stream_send_str(r->sock, QU_REC_CALL, text);
	if (e < 0) {
		ssh_said(r, e, said, sizeof(said));
		return qu_err(e, "cannot reach the agent on %s: %s%s", r->host, strerror(-e), said);
	}
	return buf ? await_reply(r, deadline_us, buf, len) : 0;
}

/* HELLO tells the agent which stream version this tool speaks, and its answer that a
 * qemu-upgrade agent is there; then QEMU's TLS key is made, fresh for this move, sent inside
 * the encrypted channel with the tls call. */
static int hello(struct qu_remote *r, uint64_t deadline_us)
{
	char text[TEXT_MAX], agent[32];
	int e;
	uint8_t hello[8] = { QU_STREAM_VERSION, 0, 0, 0, 0, 0, 0, 0 };
	if ((e = qu_stream_send(r->sock, QU_REC_HELLO, 0, hello, sizeof(hello), -1)) < 0) {
		hang_up(r);
		ssh_said(r, e, text, sizeof(text));
		return qu_err(e, "cannot reach the agent on %s: %s%s", r->host, r->ssh ? "ssh ended" : strerror(-e), text);
	}
	if ((e = await_reply(r, deadline_us, text, sizeof(text))) < 0)
		return e;
	if (qu_kv_get(text, "agent", agent, sizeof(agent)) < 0 || strcmp(agent, "qemu-upgrade"))
		return qu_err(-EPROTO, "what answered on %s is not a qemu-upgrade agent", r->host);
	if ((e = qu_psk_random(&r->psk)) < 0)
		return qu_err(e, "no random numbers for the TLS key");
	r->send_psk = 1;
	return 0;
}

/* ssh://: ssh authenticated both ends and encrypts the channel; HELLO tells the agent which
 * stream version this tool speaks, and its answer that a qemu-upgrade agent is there. */
static int connect_ssh(struct qu_remote *r, uint64_t deadline_us)
{
	struct qu_ssh_uri u;
	int e;
	if ((e = qu_ssh_uri_parse(r->host, &u)) < 0)
		return e;
	if (!(r->ssh = calloc(1, sizeof(*r->ssh))))
		return qu_err(-ENOMEM, "out of memory");
	if ((r->sock = qu_ssh_start(&u, r->ssh)) < 0) {
		e = r->sock;
		free(r->ssh);
		r->ssh = NULL;
		return e;
	}
	return hello(r, deadline_us);
}

/* HOST[:PORT]: TLS 1.3 to `agent --listen` there, each end showing its x509 certificate; the
 * agent's must name HOST (a DNS name, or the IP address given). Then the relay's plain socket
 * is the connection. */
static int connect_tls(struct qu_remote *r, const char *pki_dir, uint64_t deadline_us)
{
	char host[256], why[1024];
	unsigned char bin[16];
	int port, e = qu_tcp_split(r->host, QU_AGENT_PORT, host, sizeof(host), &port);
	if (e < 0)
		return qu_err(e, "'%s' is not HOST, HOST:PORT or [IPV6]:PORT", r->host);
	SSL_CTX *ctx = qu_x509_ctx(pki_dir, 0);
	if (!ctx)
		return -EACCES;
	SSL *ssl = SSL_new(ctx);
	SSL_CTX_free(ctx); /* ssl holds it */
	if (!ssl)
		return qu_err(-ENOMEM, "out of memory for TLS");
	X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
	X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1)
		e = X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1 ? 0 : -EINVAL;
	else
		e = SSL_set1_host(ssl, host) == 1 && SSL_set_tlsext_host_name(ssl, host) == 1 ? 0 : -EINVAL;
	if (e < 0) {
		SSL_free(ssl);
		return qu_err(e, "cannot check the agent's name against '%s'", host);
	}
	int tcp = qu_tcp_connect(r->host, QU_AGENT_PORT, deadline_us);
	if (tcp < 0) {
		SSL_free(ssl);
		return tcp;
	}
	if (SSL_set_fd(ssl, tcp) != 1 || (e = qu_x509_handshake(ssl, 0, deadline_us, why, sizeof(why))) < 0) {
		SSL_free(ssl);
		close(tcp);
		if (strstr(why, "wrong version number") || strstr(why, "packet length"))
			return qu_err(-EPROTO, "the agent on %s does not speak TLS (%s): an agent of an older qemu-upgrade "
				      "(the shared key) listens there: install the same qemu-upgrade on both hosts", r->host, why);
		if (strstr(why, "peer closed"))
			return qu_err(-ECONNRESET, "TLS with the agent on %s failed: %s during the handshake (at its limit "
				      "of connections, or it refused this host: its log says which)", r->host, why);
		return qu_err(e == -ETIMEDOUT ? e : -EACCES, "TLS with the agent on %s failed: %s (the agent's "
			      "server-cert.pem must be signed by this host's ca-cert.pem and name %s)", r->host, why, host);
	}
	if ((r->sock = qu_x509_relay_start(ssl, tcp, 1, &r->relay)) < 0)
		return r->sock;
	return hello(r, deadline_us);
}

int qu_remote_connect(const char *host, const char *pki_dir, uint64_t deadline_us, struct qu_remote **out)
{
	struct qu_remote *r = calloc(1, sizeof(*r));
	if (!r)
		return qu_err(-ENOMEM, "out of memory");
	r->sock = -1;
	r->mem_available = -1;
	snprintf(r->host, sizeof(r->host), "%s", host);
	int e = qu_ssh_uri_is(host) ? connect_ssh(r, deadline_us) : connect_tls(r, pki_dir, deadline_us);
	if (e < 0) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s", qu_err_msg());
		qu_remote_close(r);
		qu_err(e, "%s", msg);
		return e;
	}
	*out = r;
	return 0;
}

void qu_remote_close(struct qu_remote *r)
{
	if (!r)
		return;
	if (r->sock >= 0)
		qu_stream_send(r->sock, QU_REC_END, 0, NULL, 0, -1);
	hang_up(r);
	/* The relay sends TLS's close once our end is closed. */
	qu_x509_relay_stop(r->relay, qu_now_us() + 5000000u);
	if (r->ssh) {
		/* ssh ends with the agent's session, which ends at END (or the socket's end). */
		qu_ssh_stop(r->ssh, qu_now_us() + 10000000u);
		free(r->ssh);
	}
	explicit_bzero(&r->psk, sizeof(r->psk));
	free(r->ramblocks);
	free(r);
}

int qu_remote_probe(struct qu_remote *r, const char *path, const char *machine, uint64_t deadline_us,
		    struct qu_binary *b, int *has_machine)
{
	char text[TEXT_MAX] = "", ver[48];
	int e = 0;
	qu_kv_add(text, sizeof(text), "op", "probe");
	qu_kv_add(text, sizeof(text), "binary", path);
	qu_kv_add(text, sizeof(text), "machine", machine);
	if (e < 0 || (e = call(r, text, deadline_us, text, sizeof(text))) < 0)
		return e < 0 && !qu_err_msg()[0] ? qu_err(e, "agent: %s", strerror(-e)) : e;
	memset(b, 0, sizeof(*b));
	snprintf(b->path, sizeof(b->path), "%s", path);
	qu_kv_get(text, "version_line", b->version_line, sizeof(b->version_line));
	qu_kv_get(text, "version", ver, sizeof(ver));
	if (sscanf(ver, "%d.%d.%d", &b->ver[0], &b->ver[1], &b->ver[2]) < 2)
		return qu_err(-EBADMSG, "the agent on %s did not say which QEMU %s is", r->host, path);
	*has_machine = (int)qu_kv_num(text, "machine", 0);
	r->mem_available = qu_kv_num(text, "mem_available", -1);
	r->standby = qu_kv_num(text, "standby", 0) == 1;
	if (qu_kv_get(text, "standby_refused", r->standby_refused, sizeof(r->standby_refused)) < 0)
		snprintf(r->standby_refused, sizeof(r->standby_refused), "the agent there does not hold hot standbys");
	return 0;
}

int qu_remote_disk(struct qu_remote *r, const char *path, const char *format, unsigned long long size,
		   const char *device, const char *backing, const char *backing_format, const char *base,
		   const char *base_sum)
{
	char text[TEXT_MAX] = "";
	int e = qu_kv_add(text, sizeof(text), "op", "disk");
	e |= qu_kv_add(text, sizeof(text), "path", path);
	e |= qu_kv_add(text, sizeof(text), "format", format);
	e |= qu_kv_addf(text, sizeof(text), "size", "%llu", size);
	e |= qu_kv_add(text, sizeof(text), "device", device);
	if (backing) {
		e |= qu_kv_add(text, sizeof(text), "backing", backing);
		e |= qu_kv_add(text, sizeof(text), "backing_format", backing_format);
		e |= qu_kv_add(text, sizeof(text), "base", base);
		e |= qu_kv_add(text, sizeof(text), "base_sum", base_sum);
	}
	if (e)
		return qu_err(-ENAMETOOLONG, "disk '%s': its paths are too long to send", device);
	return call(r, text, 0, NULL, 0);
}

int qu_remote_chain_ask(struct qu_remote *r, const char *path, unsigned uid, unsigned gid)
{
	char text[TEXT_MAX] = "";
	int e = qu_kv_add(text, sizeof(text), "op", "chain");
	e |= qu_kv_add(text, sizeof(text), "path", path);
	e |= qu_kv_addf(text, sizeof(text), "uid", "%u", uid);
	e |= qu_kv_addf(text, sizeof(text), "gid", "%u", gid);
	return e ? qu_err(-ENAMETOOLONG, "backing file path too long: %.200s", path) : call(r, text, 0, NULL, 0);
}

/* The answer to a chain or verify call: 1 with why when the agent could not do it there (its
 * error=), 0 with text, or -errno. */
static int await_answer(struct qu_remote *r, uint64_t deadline_us, char *text, size_t len, char *why, size_t wlen)
{
	int e = await_reply(r, deadline_us, text, len);
	if (e < 0)
		return e;
	return qu_kv_get(text, "error", why, wlen) == 0;
}

int qu_remote_chain_answer(struct qu_remote *r, uint64_t deadline_us, struct qu_file_fact *f, char *why, size_t len)
{
	char text[TEXT_MAX];
	int e = await_answer(r, deadline_us, text, sizeof(text), why, len);
	if (e != 0)
		return e;
	if (qu_chain_fact_get(text, f) < 0)
		return qu_err(-EBADMSG, "the agent on %s described a backing file without its size, format or sum", r->host);
	return 0;
}

int qu_remote_verify_ask(struct qu_remote *r, const char *device, int top)
{
	char text[TEXT_MAX] = "";
	int e = qu_kv_add(text, sizeof(text), "op", "verify");
	e |= qu_kv_add(text, sizeof(text), "device", device);
	e |= qu_kv_addf(text, sizeof(text), "top", "%d", !!top);
	return e ? qu_err(-ENAMETOOLONG, "device name too long") : call(r, text, 0, NULL, 0);
}

int qu_remote_verify_answer(struct qu_remote *r, uint64_t deadline_us, char *hex, char *why, size_t len)
{
	char text[TEXT_MAX];
	int e = await_answer(r, deadline_us, text, sizeof(text), why, len);
	if (e != 0)
		return e;
	if (qu_kv_get(text, "sum", hex, QU_DIGEST_HEX) < 0 || strlen(hex) != 64)
		return qu_err(-EBADMSG, "the agent on %s answered the verification without a sum", r->host);
	return 0;
}

int qu_remote_tls(struct qu_remote *r, int on)
{
	char text[256], hex[QU_PSK_HEX_LEN];
	if (!on || !r->send_psk)
		return call(r, on ? "op=tls\non=1\n" : "op=tls\non=0\n", 0, NULL, 0);
	/* Only inside ssh's encrypted channel: the legacy transport derives it on both ends. */
	qu_psk_hex(&r->psk, hex);
	snprintf(text, sizeof(text), "op=tls\non=1\npsk=%s\n", hex);
	int e = call(r, text, 0, NULL, 0);
	explicit_bzero(hex, sizeof(hex));
	explicit_bzero(text, sizeof(text));
	return e;
}

int qu_remote_start(struct qu_remote *r, const struct qu_launch *spec, uint64_t deadline_us)
{
	char text[TEXT_MAX];
	int e = qu_launch_send_records(r->sock, spec);
	if (e == 0 && (e = qu_stream_send(r->sock, QU_REC_EXEC, 0, NULL, 0, -1)) < 0)
		qu_err(e, "cannot reach the agent on %s: %s", r->host, strerror(-e));
	if (e < 0 || (e = await_reply(r, deadline_us, text, sizeof(text))) < 0)
		return e;
	r->new_pid = (pid_t)qu_kv_num(text, "pid", 0);
	qu_kv_get(text, "migrate", r->migrate_uri, sizeof(r->migrate_uri));
	qu_kv_get(text, "nbd", r->nbd_addr, sizeof(r->nbd_addr));
	free(r->ramblocks);
	r->ramblocks = strdup(text);
	if (r->ramblocks && qu_kv_get(text, "ramblocks", r->ramblocks, strlen(text) + 1) < 0) {
		free(r->ramblocks);
		r->ramblocks = NULL;
	}
	if (r->new_pid <= 0 || strncmp(r->migrate_uri, "tcp:", 4))
		return qu_err(-EBADMSG, "the agent on %s started the new QEMU but did not say where it listens", r->host);
	return 0;
}

int qu_remote_resume(struct qu_remote *r, uint64_t deadline_us)
{
	char text[TEXT_MAX];
	r->agent_said = 0;
	int e = call(r, "op=resume\n", deadline_us, text, sizeof(text));
	/* An agent that answers with an error before its `cont` has stopped the new QEMU: the
	 * guest is still only here (-ECANCELED). Past its `cont`, or without an answer, nobody
	 * can tell. */
	if (e < 0 && r->agent_said && e != -ENOTRECOVERABLE) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s", qu_err_msg());
		return qu_err(-ECANCELED, "%s (the new QEMU there was stopped)", msg);
	}
	if (e < 0)
		return e;
	r->resumed_us = qu_kv_num(text, "resumed_us", 0);
	r->announced = (int)qu_kv_num(text, "announced", 0);
	r->tls = (int)qu_kv_num(text, "tls", 0);
	if (!r->announced) {
		char why[512];
		qu_kv_get(text, "announce_error", why, sizeof(why));
		qu_info("warning: the guest runs on %s, but its MAC addresses were not announced: %s", r->host, why);
	}
	return 0;
}

int qu_remote_check(struct qu_remote *r)
{
	/* Between requests the agent says nothing: anything to read is its end (EOF, or an
	 * error it sent when its session failed). */
	int p = r->sock < 0 ? -ENOTCONN : qu_poll_one(r->sock, POLLIN, 0);
	if (p == -ECANCELED)
		return p; /* a Ctrl-C: rolled back as such */
	if (p != -ETIMEDOUT) {
		char said[1100];
		hang_up(r);
		ssh_said(r, -ECONNRESET, said, sizeof(said));
		return qu_err(-ECONNRESET, "the agent on %s went away before the resume%s", r->host, said);
	}
	return 0;
}

void qu_remote_last_words(struct qu_remote *r, char *buf, size_t len)
{
	buf[0] = '\0';
	if (r->ssh) {
		qu_ssh_drain(r->ssh, 0);
		qu_ssh_said(r->ssh, 1, buf, len);
	}
}

int qu_remote_abort(struct qu_remote *r, uint64_t deadline_us)
{
	char text[TEXT_MAX];
	/* The agent answers an abort with an ERROR record ("called off") once it has cleaned up. */
	int e = call(r, "op=abort\n", deadline_us, text, sizeof(text));
	return e == -ECANCELED ? 0 : e;
}

int qu_remote_admit(struct qu_remote *r, const struct qu_launch *spec, uint64_t deadline_us, char *why, size_t len)
{
	char text[TEXT_MAX], one[QU_REFUSAL_TEXT_MAX], key[16];
	int e = qu_launch_send_records(r->sock, spec);
	if (e < 0)
		return qu_err(e, "cannot reach the agent on %s: %s", r->host, strerror(-e));
	if ((e = call(r, "op=admit\n", deadline_us, text, sizeof(text))) < 0)
		return e;
	why[0] = '\0';
	if (qu_kv_num(text, "allowed", -1) == 1)
		return 0;
	long long n = qu_kv_num(text, "refused", 0);
	for (unsigned i = 0; i < 64; i++) {
		snprintf(key, sizeof(key), "why.%u", i);
		if (qu_kv_get(text, key, one, sizeof(one)) < 0)
			break;
		size_t l = strlen(why);
		snprintf(why + l, len - l, "%s%s", l ? "\n" : "", one);
		n--;
	}
	if (n > 0) {
		size_t l = strlen(why);
		snprintf(why + l, len - l, "%s(%lld more reasons the agent did not fit in its answer)", l ? "\n" : "", n);
	}
	if (!why[0])
		snprintf(why, len, "the agent on %s refuses the launch and does not say why", r->host);
	return 1;
}

int qu_remote_colo(struct qu_remote *r, const char *netdev, unsigned timeout_ms, uint64_t deadline_us, char *mirror,
		   char *compare, size_t len)
{
	char text[TEXT_MAX] = "";
	qu_kv_add(text, sizeof(text), "op", "colo");
	qu_kv_add(text, sizeof(text), "netdev", netdev);
	qu_kv_addf(text, sizeof(text), "timeout_ms", "%u", timeout_ms);
	int e = call(r, text, deadline_us, text, sizeof(text));
	if (e < 0)
		return e;
	if (qu_kv_get(text, "mirror", mirror, len) < 0 || qu_kv_get(text, "compare", compare, len) < 0)
		return qu_err(-EBADMSG, "the agent on %s did not say where the secondary's filters listen", r->host);
	return 0;
}

int qu_remote_colo_disk(struct qu_remote *r, int active_fd, int hidden_fd, unsigned long long size)
{
	char text[TEXT_MAX] = "";
	qu_kv_add(text, sizeof(text), "op", "colo_disk");
	qu_kv_addf(text, sizeof(text), "active_fd", "%d", active_fd);
	qu_kv_addf(text, sizeof(text), "hidden_fd", "%d", hidden_fd);
	qu_kv_addf(text, sizeof(text), "size", "%llu", size);
	return call(r, text, 0, NULL, 0);
}

int qu_remote_heartbeat(struct qu_remote *r, uint64_t deadline_us)
{
	char text[TEXT_MAX];
	r->agent_said = 0;
	return call(r, "op=heartbeat\n", deadline_us, text, sizeof(text));
}

int qu_remote_failover(struct qu_remote *r, uint64_t deadline_us)
{
	char text[TEXT_MAX];
	r->agent_said = 0;
	int e = call(r, "op=failover\n", deadline_us, text, sizeof(text));
	if (e < 0)
		return e;
	r->resumed_us = qu_kv_num(text, "resumed_us", 0);
	r->announced = (int)qu_kv_num(text, "announced", 0);
	return 0;
}

int qu_remote_pending(struct qu_remote *r, uint64_t deadline_us)
{
	char text[TEXT_MAX];
	r->agent_said = 0;
	int e = await_reply(r, deadline_us, text, sizeof(text));
	return e < 0 ? e : qu_err(-EBADMSG, "agent on %s: an answer nobody asked for", r->host);
}
