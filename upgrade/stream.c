#include "upgrade/stream.h"
#include "upgrade/fdpass/scm.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static void put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
uint32_t qu_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t record_crc(const uint8_t *hdr, const uint8_t *payload, uint32_t len)
{
	uLong c = crc32(0L, hdr, 12);
	return (uint32_t)crc32(c, payload, len);
}

long qu_stream_check_header(const uint8_t hdr[QU_STREAM_HDR_LEN], uint16_t *type, uint16_t *flags)
{
	if (qu_get_u32(hdr) != QU_STREAM_MAGIC)
		return -EBADMSG;
	*type = get_u16(hdr + 4);
	*flags = get_u16(hdr + 6);
	uint32_t len = qu_get_u32(hdr + 8);
	if (*type == 0 || *type > QU_REC_TYPE_MAX || len > QU_STREAM_MAX_PAYLOAD)
		return -EBADMSG;
	return (long)len;
}

static int has_nul_end(const struct qu_rec *r, uint32_t from)
{
	return r->len > from && r->payload[r->len - 1] == '\0' &&
	       memchr(r->payload + from, '\0', r->len - from) == r->payload + r->len - 1;
}

int qu_stream_validate(const struct qu_rec *r)
{
	int fd_expected = r->type == QU_REC_FD && !(r->flags & QU_REC_FLAG_FD_ELIDED);
	if ((r->fd >= 0) != fd_expected)
		return -EBADMSG;
	switch (r->type) {
	case QU_REC_HELLO:
		return r->len == 8 ? 0 : -EBADMSG;
	case QU_REC_ARG:
	case QU_REC_ENV:
	case QU_REC_CWD:
	case QU_REC_CONTEXT:
	case QU_REC_CALL:
	case QU_REC_REPLY:
		return has_nul_end(r, 0) ? 0 : -EBADMSG;
	case QU_REC_FD: {
		/* The name, and optionally the spec: one or two strings, each NUL-terminated. */
		if (r->len <= 8 || r->payload[r->len - 1] != '\0')
			return -EBADMSG;
		const uint8_t *first = memchr(r->payload + 8, '\0', r->len - 8);
		const uint8_t *end = r->payload + r->len - 1;
		return first == end || memchr(first + 1, '\0', (size_t)(end - first)) == end ? 0 : -EBADMSG;
	}
	case QU_REC_EXEC:
	case QU_REC_END:
		return r->len == 0 ? 0 : -EBADMSG;
	case QU_REC_STARTED:
		return r->len == 4 ? 0 : -EBADMSG;
	case QU_REC_ERROR:
		return r->len > 4 && has_nul_end(r, 4) ? 0 : -EBADMSG;
	}
	return -EBADMSG;
}

static int fill_record(struct qu_rec *rec, uint16_t type, uint16_t flags, const uint8_t *hdr,
		       const uint8_t *payload, uint32_t len)
{
	if (record_crc(hdr, payload, len) != qu_get_u32(hdr + 12))
		return -EBADMSG;
	rec->payload = malloc(len + 1);
	if (!rec->payload)
		return -ENOMEM;
	memcpy(rec->payload, payload, len);
	rec->payload[len] = '\0';
	rec->type = type;
	rec->flags = flags;
	rec->len = len;
	return 0;
}

int qu_stream_decode(const uint8_t *buf, size_t len, struct qu_rec *rec, size_t *used)
{
	uint16_t type, flags;
	memset(rec, 0, sizeof(*rec));
	rec->fd = -1;
	if (len < QU_STREAM_HDR_LEN)
		return -EAGAIN;
	long plen = qu_stream_check_header(buf, &type, &flags);
	if (plen < 0)
		return (int)plen;
	if (len - QU_STREAM_HDR_LEN < (size_t)plen)
		return -EAGAIN;
	int r = fill_record(rec, type, flags, buf, buf + QU_STREAM_HDR_LEN, (uint32_t)plen);
	if (r < 0)
		return r;
	r = qu_stream_validate(rec);
	if (r < 0) {
		qu_rec_free(rec);
		return r;
	}
	*used = QU_STREAM_HDR_LEN + (size_t)plen;
	return 0;
}

/* A record's bytes as sent (header with its CRC, payload), with room for `extra` more. */
static uint8_t *encode(uint16_t type, uint16_t flags, const void *payload, uint32_t len, size_t extra)
{
	uint8_t *msg = malloc(QU_STREAM_HDR_LEN + len + extra);
	if (!msg)
		return NULL;
	put_u32(msg, QU_STREAM_MAGIC);
	put_u16(msg + 4, type);
	put_u16(msg + 6, flags);
	put_u32(msg + 8, len);
	if (len)
		memcpy(msg + QU_STREAM_HDR_LEN, payload, len);
	put_u32(msg + 12, record_crc(msg, msg + QU_STREAM_HDR_LEN, len));
	return msg;
}

int qu_stream_send(int sock, uint16_t type, uint16_t flags, const void *payload, uint32_t len, int fd)
{
	if (len > QU_STREAM_MAX_PAYLOAD)
		return -EMSGSIZE;
	uint8_t *msg = encode(type, flags, payload, len, 0);
	if (!msg)
		return -ENOMEM;
	/* One write per record keeps a descriptor attached to its own record's first byte. */
	int r = fd >= 0 ? qu_scm_send(sock, msg, QU_STREAM_HDR_LEN + len, &fd, 1)
			: qu_write_full(sock, msg, QU_STREAM_HDR_LEN + len);
	free(msg);
	return r;
}

int qu_stream_send_str(int sock, uint16_t type, const char *s)
{
	size_t n = strlen(s) + 1;
	if (n > QU_STREAM_MAX_PAYLOAD)
		return -EMSGSIZE;
	return qu_stream_send(sock, type, 0, s, (uint32_t)n, -1);
}

int qu_stream_send_fd(int sock, int fd, uint32_t target, uint32_t kind, const char *name, const char *spec)
{
	size_t n = strlen(name) + 1, m = spec && *spec ? strlen(spec) + 1 : 0;
	if (n > 4096 || m > 4096)
		return -EMSGSIZE;
	uint8_t p[8 + 4096 + 4096];
	put_u32(p, target);
	put_u32(p + 4, kind);
	memcpy(p + 8, name, n);
	if (m)
		memcpy(p + 8 + n, spec, m);
	return qu_stream_send(sock, QU_REC_FD, fd < 0 ? QU_REC_FLAG_FD_ELIDED : 0, p, (uint32_t)(8 + n + m), fd);
}

const char *qu_rec_fd_spec(const struct qu_rec *rec)
{
	const char *name = (const char *)rec->payload + 8;
	size_t n = strlen(name) + 1;
	return 8 + n < rec->len ? name + n : "";
}

int qu_stream_send_error(int sock, int err, const char *msg)
{
	size_t n = strnlen(msg, 4000) ;
	uint8_t p[4 + 4001];
	put_u32(p, (uint32_t)err);
	memcpy(p + 4, msg, n);
	p[4 + n] = '\0';
	return qu_stream_send(sock, QU_REC_ERROR, 0, p, (uint32_t)(4 + n + 1), -1);
}

int qu_stream_send_failure(int sock, const char *who, int r)
{
	qu_info("%s: %s", who, qu_err_msg());
	qu_stream_send_error(sock, r < 0 ? -r : EIO, qu_err_msg());
	return r;
}

/* Reads exactly len bytes, gathering any descriptors that arrive with them. */
static int recv_exact(int sock, uint8_t *buf, size_t len, uint64_t deadline_us, int *fds,
		      size_t *nfds, size_t max_fds)
{
	size_t got = 0;
	while (got < len) {
		int p = qu_poll_one(sock, POLLIN, deadline_us);
		if (p < 0)
			return p;
		ssize_t n = qu_scm_recv(sock, buf + got, len - got, fds, nfds, max_fds);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -ECONNRESET;
		got += (size_t)n;
	}
	return 0;
}

int qu_stream_recv(int sock, uint64_t deadline_us, struct qu_rec *rec)
{
	uint8_t hdr[QU_STREAM_HDR_LEN], *payload = NULL;
	int fds[2];
	size_t nfds = 0;
	uint16_t type, flags;
	int r;

	memset(rec, 0, sizeof(*rec));
	rec->fd = -1;
	r = recv_exact(sock, hdr, sizeof(hdr), deadline_us, fds, &nfds, 1);
	if (r < 0)
		goto out;
	long plen = qu_stream_check_header(hdr, &type, &flags);
	if (plen < 0) {
		r = (int)plen;
		goto out;
	}
	payload = malloc((size_t)plen + 1);
	if (!payload) {
		r = -ENOMEM;
		goto out;
	}
	r = recv_exact(sock, payload, (size_t)plen, deadline_us, fds, &nfds, 1);
	if (r < 0)
		goto out;
	r = fill_record(rec, type, flags, hdr, payload, (uint32_t)plen);
	if (r < 0)
		goto out;
	rec->fd = nfds ? fds[0] : -1;
	nfds = 0;
	r = qu_stream_validate(rec);
	if (r < 0)
		qu_rec_free(rec);
out:
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	free(payload);
	return r;
}

void qu_rec_free(struct qu_rec *rec)
{
	free(rec->payload);
	rec->payload = NULL;
	if (rec->fd >= 0)
		close(rec->fd);
	rec->fd = -1;
}

const char *qu_rec_type_name(uint16_t type)
{
	static const char *const names[] = { "?", "HELLO", "ARG", "ENV", "FD", "CWD", "EXEC",
					     "STARTED", "ERROR", "END", "CONTEXT", "CALL", "REPLY" };
	return type <= QU_REC_TYPE_MAX ? names[type] : "?";
}

void qu_rec_describe(const struct qu_rec *r, char *buf, size_t len)
{
	const char *name = qu_rec_type_name(r->type);
	const uint8_t *p = r->payload;
	switch (r->type) {
	case QU_REC_HELLO:
		snprintf(buf, len, "%s version=%u", name, qu_get_u32(p));
		break;
	case QU_REC_ARG:
	case QU_REC_ENV:
	case QU_REC_CWD:
		snprintf(buf, len, "%s %s", name, (const char *)p);
		break;
	case QU_REC_CONTEXT:
	case QU_REC_CALL:
	case QU_REC_REPLY: {
		/* One line per setting, so that a dump stays one record per line. */
		size_t n = (size_t)snprintf(buf, len, "%s ", name);
		for (const uint8_t *c = p; *c && n + 2 < len; c++)
			buf[n++] = *c == '\n' ? ' ' : (char)*c;
		buf[n < len ? n : len - 1] = '\0';
		break;
	}
	case QU_REC_FD: {
		/* The spec's lines joined with spaces, so that a dump stays one record per line. */
		char spec[512];
		snprintf(spec, sizeof(spec), "%s", qu_rec_fd_spec(r));
		for (char *c = spec; *c; c++)
			*c = *c == '\n' ? (c[1] ? ' ' : '\0') : *c;
		snprintf(buf, len, "FD target=%u kind=%u name=%s%s%s%s", qu_get_u32(p), qu_get_u32(p + 4),
			 (const char *)p + 8, spec[0] ? " spec=" : "", spec,
			 (r->flags & QU_REC_FLAG_FD_ELIDED) ? " (descriptor not stored)" : "");
		break;
	}
	case QU_REC_STARTED:
		snprintf(buf, len, "STARTED pid=%u", qu_get_u32(p));
		break;
	case QU_REC_ERROR:
		snprintf(buf, len, "ERROR errno=%d %s", (int)qu_get_u32(p), (const char *)p + 4);
		break;
	default:
		snprintf(buf, len, "%s", name);
	}
}
