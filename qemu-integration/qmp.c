#include "qemu-integration/qmp.h"
#include "qemu-integration/opts.h"
#include "upgrade/clock.h"
#include "upgrade/fdpass/scm.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* One QMP message is one line; anything longer than this is not a monitor we can trust. */
#define QMP_MAX_LINE (16u << 20)
#define QMP_MAX_QUEUED_EVENTS 256
#define QMP_GREETING_TIMEOUT_US (5u * 1000000u)

struct qu_qmp {
	int fd;
	char *buf;
	size_t len, cap;
	int ver[3];
	uint64_t next_id;
	json_object *events[QMP_MAX_QUEUED_EVENTS];
	size_t nevents;
};

const char *qu_json_str(json_object *o)
{
	const char *s = json_object_get_string(o);
	return s ? s : "";
}

int qu_qmp_query_list(struct qu_qmp *q, const char *cmd, uint64_t deadline_us, json_object **list)
{
	*list = NULL;
	int r = qu_qmp_execute(q, cmd, NULL, -1, deadline_us, list);
	if (r < 0)
		return r;
	if (!json_object_is_type(*list, json_type_array)) {
		json_object_put(*list);
		*list = NULL;
		return qu_err(-EPROTO, "QMP %s: the answer is not a list", cmd);
	}
	return 0;
}

const char *qu_json_member_str(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? qu_json_str(v) : "";
}

long long qu_json_member_int(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

void qu_qmp_close(struct qu_qmp *q)
{
	if (!q)
		return;
	qu_close(&q->fd);
	for (size_t i = 0; i < q->nevents; i++)
		json_object_put(q->events[i]);
	free(q->buf);
	free(q);
}

void qu_qmp_disconnect(struct qu_qmp *q)
{
	if (q)
		qu_close(&q->fd);
}

void qu_qmp_version(const struct qu_qmp *q, int *major, int *minor, int *micro)
{
	*major = q->ver[0];
	*minor = q->ver[1];
	*micro = q->ver[2];
}

/* Returns the next complete message, reading as needed; watch_fd readable -> -ECHILD. */
static int read_message(struct qu_qmp *q, int watch_fd, uint64_t deadline_us, json_object **out)
{
	for (;;) {
		char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
		if (nl) {
			*nl = '\0';
			json_object *o = json_tokener_parse(q->buf);
			size_t used = (size_t)(nl - q->buf) + 1;
			memmove(q->buf, nl + 1, q->len - used);
			q->len -= used;
			if (!o || !json_object_is_type(o, json_type_object)) {
				json_object_put(o);
				return qu_err(-EPROTO, "QMP: the monitor sent a message that is not a JSON object");
			}
			*out = o;
			return 0;
		}
		if (q->len >= QMP_MAX_LINE)
			return qu_err(-EMSGSIZE, "QMP: a message longer than %u bytes", QMP_MAX_LINE);
		if (q->cap - q->len < 65536) {
			size_t ncap = q->cap ? q->cap * 2 : 65536;
			char *nb = realloc(q->buf, ncap);
			if (!nb)
				return -ENOMEM;
			q->buf = nb;
			q->cap = ncap;
		}
		struct pollfd p[2] = { { .fd = q->fd, .events = POLLIN }, { .fd = watch_fd, .events = POLLIN } };
		int c = qu_cancel_check();
		if (c < 0)
			return c;
		int r = poll(p, watch_fd >= 0 ? 2 : 1, qu_ms_left(deadline_us));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return qu_err(-ETIMEDOUT, "QMP: the monitor did not answer in time");
		if (watch_fd >= 0 && (p[1].revents & POLLIN) && !(p[0].revents & POLLIN))
			return qu_err(-ECHILD, "QMP: the QEMU process exited");
		ssize_t n = read(q->fd, q->buf + q->len, q->cap - q->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return qu_err(-errno, "QMP: read: %s", strerror(errno));
		if (n == 0)
			return qu_err(-ECONNRESET, "QMP: the monitor closed the connection");
		q->len += (size_t)n;
	}
}

static void queue_event(struct qu_qmp *q, json_object *ev)
{
	if (q->nevents == QMP_MAX_QUEUED_EVENTS) {
		json_object_put(q->events[0]);
		memmove(q->events, q->events + 1, sizeof(q->events[0]) * (QMP_MAX_QUEUED_EVENTS - 1));
		q->nevents--;
	}
	q->events[q->nevents++] = ev;
}

static int send_json(struct qu_qmp *q, json_object *msg, int send_fd)
{
	size_t len;
	const char *text = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN, &len);
	int r = send_fd >= 0 ? qu_scm_send(q->fd, text, len, &send_fd, 1) : qu_write_full(q->fd, text, len);
	return r < 0 ? qu_err(r, "QMP: write: %s", strerror(-r)) : 0;
}

int qu_qmp_execute(struct qu_qmp *q, const char *cmd, json_object *args, int send_fd,
		   uint64_t deadline_us, json_object **ret)
{
	json_object *msg = json_object_new_object();
	uint64_t id = ++q->next_id;
	json_object_object_add(msg, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(msg, "arguments", args);
	json_object_object_add(msg, "id", json_object_new_int64((int64_t)id));
	qu_debug("QMP -> %s", json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN));
	int r = send_json(q, msg, send_fd);
	json_object_put(msg);
	if (r < 0)
		return qu_err_wrap(r, "%s", cmd);

	for (;;) {
		json_object *m, *v;
		r = read_message(q, -1, deadline_us, &m);
		if (r < 0)
			return qu_err_wrap(r, "%s", cmd);
		if (json_object_object_get_ex(m, "event", NULL)) {
			queue_event(q, m);
			continue;
		}
		if (!json_object_object_get_ex(m, "id", &v) || (uint64_t)json_object_get_int64(v) != id) {
			json_object_put(m); /* an answer to an earlier command that timed out */
			continue;
		}
		qu_debug("QMP <- %s", json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN));
		if (json_object_object_get_ex(m, "error", &v)) {
			json_object *desc = NULL;
			json_object_object_get_ex(v, "desc", &desc);
			r = qu_err(-EREMOTEIO, "QMP %s: %s", cmd, desc ? qu_json_str(desc) : "error");
			json_object_put(m);
			return r;
		}
		if (ret) {
			*ret = json_object_object_get_ex(m, "return", &v) ? json_object_get(v) : NULL;
		}
		json_object_put(m);
		return 0;
	}
}

static int event_matches(json_object *ev, const char *name, const char *const *statuses)
{
	json_object *n, *data, *st;
	const char *s; /* NULL for a JSON null */
	if (!json_object_object_get_ex(ev, "event", &n) || !(s = json_object_get_string(n)) || strcmp(s, name))
		return 0;
	if (!statuses)
		return 1;
	if (!json_object_object_get_ex(ev, "data", &data) || !json_object_object_get_ex(data, "status", &st) ||
	    !(s = json_object_get_string(st)))
		return 0;
	for (; *statuses; statuses++)
		if (!strcmp(s, *statuses))
			return 1;
	return 0;
}

/* Hands out an event's data and its timestamp ({"seconds", "microseconds"}). */
static int take_event(json_object *ev, json_object **data, int64_t *realtime_us)
{
	json_object *d, *ts, *sec, *usec;
	if (data)
		*data = json_object_object_get_ex(ev, "data", &d) ? json_object_get(d) : NULL;
	if (realtime_us && json_object_object_get_ex(ev, "timestamp", &ts) &&
	    json_object_object_get_ex(ts, "seconds", &sec) && json_object_object_get_ex(ts, "microseconds", &usec))
		/* Unsigned: a nonsense stamp wraps instead of overflowing. */
		*realtime_us = (int64_t)((uint64_t)json_object_get_int64(sec) * 1000000u +
					 (uint64_t)json_object_get_int64(usec));
	json_object_put(ev);
	return 0;
}

static int wait_event(struct qu_qmp *q, const char *name, const char *const *statuses,
		      int watch_fd, uint64_t deadline_us, json_object **data, int64_t *realtime_us)
{
	for (size_t i = 0; i < q->nevents; i++) {
		if (!event_matches(q->events[i], name, statuses))
			continue;
		json_object *ev = q->events[i];
		memmove(q->events + i, q->events + i + 1, sizeof(q->events[0]) * (q->nevents - i - 1));
		q->nevents--;
		return take_event(ev, data, realtime_us);
	}
	for (;;) {
		json_object *m;
		int r = read_message(q, watch_fd, deadline_us, &m);
		if (r < 0)
			return qu_err_wrap(r, "waiting for event %s", name);
		if (event_matches(m, name, statuses))
			return take_event(m, data, realtime_us);
		if (json_object_object_get_ex(m, "event", NULL))
			queue_event(q, m);
		else
			json_object_put(m);
	}
}

int qu_qmp_wait_event(struct qu_qmp *q, const char *name, const char *const *statuses,
		      int watch_fd, uint64_t deadline_us, json_object **data)
{
	return wait_event(q, name, statuses, watch_fd, deadline_us, data, NULL);
}

int qu_qmp_next_event(struct qu_qmp *q, int watch_fd, uint64_t deadline_us, char *name, size_t len,
		      int64_t *realtime_us, json_object **data)
{
	json_object *m = NULL, *n;
	if (q->nevents) {
		m = q->events[0];
		memmove(q->events, q->events + 1, sizeof(q->events[0]) * (q->nevents - 1));
		q->nevents--;
	}
	while (!m) {
		int r = read_message(q, watch_fd, deadline_us, &m);
		if (r < 0)
			return r;
		if (!json_object_object_get_ex(m, "event", NULL)) {
			json_object_put(m); /* a late answer to a command that timed out */
			m = NULL;
		}
	}
	snprintf(name, len, "%s", json_object_object_get_ex(m, "event", &n) ? qu_json_str(n) : "");
	return take_event(m, data, realtime_us);
}

int qu_qmp_fd(const struct qu_qmp *q) { return q->fd; }

int qu_qmp_buffered(const struct qu_qmp *q) { return q->nevents > 0 || (q->len && memchr(q->buf, '\n', q->len)); }

int qu_qmp_event_time(struct qu_qmp *q, const char *name, uint64_t deadline_us, int64_t *realtime_us)
{
	return wait_event(q, name, NULL, -1, deadline_us, NULL, realtime_us);
}

int qu_qmp_query_string(struct qu_qmp *q, const char *cmd, const char *member,
			uint64_t deadline_us, char *buf, size_t len)
{
	json_object *ret = NULL, *v;
	int r = qu_qmp_execute(q, cmd, NULL, -1, deadline_us, &ret);
	if (r < 0)
		return r;
	if (!json_object_object_get_ex(ret, member, &v)) {
		json_object_put(ret);
		return qu_err(-EPROTO, "QMP %s: the answer has no '%s'", cmd, member);
	}
	qu_copy_printable(buf, len, json_object_get_string(v));
	json_object_put(ret);
	return 0;
}

static int parse_greeting(struct qu_qmp *q, json_object *g)
{
	json_object *qmp, *version, *qemu, *v;
	if (!json_object_object_get_ex(g, "QMP", &qmp) ||
	    !json_object_object_get_ex(qmp, "version", &version) ||
	    !json_object_object_get_ex(version, "qemu", &qemu))
		return qu_err(-EPROTO, "QMP: the peer's greeting is not a QMP greeting");
	const char *keys[3] = { "major", "minor", "micro" };
	for (int i = 0; i < 3; i++)
		q->ver[i] = json_object_object_get_ex(qemu, keys[i], &v) ? json_object_get_int(v) : 0;
	return 0;
}

int qu_qmp_attach(int fd, uint64_t deadline_us, struct qu_qmp **out)
{
	struct qu_qmp *q = calloc(1, sizeof(*q));
	json_object *greeting = NULL;
	int r;

	if (!q) {
		close(fd);
		return -ENOMEM;
	}
	q->fd = fd;
	/* The greeting comes first; an event that races ahead of it is kept for later. */
	while ((r = read_message(q, -1, deadline_us, &greeting)) == 0 &&
	       json_object_object_get_ex(greeting, "event", NULL))
		queue_event(q, greeting);
	if (r < 0)
		goto fail;
	r = parse_greeting(q, greeting);
	json_object_put(greeting);
	if (r < 0)
		goto fail;
	r = qu_qmp_execute(q, "qmp_capabilities", NULL, -1, deadline_us, NULL);
	if (r < 0)
		goto fail;
	*out = q;
	return 0;
fail:
	qu_qmp_close(q);
	return r;
}

int qu_qmp_connect(const char *path, uint64_t deadline_us, struct qu_qmp **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return qu_err(-ENAMETOOLONG, "QMP socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return qu_err(-e, "cannot connect to QMP socket %s: %s", path, strerror(e));
	}
	return qu_qmp_connected(fd, path, deadline_us, out);
}

int qu_qmp_connected(int fd, const char *path, uint64_t deadline_us, struct qu_qmp **out)
{
	/* QEMU serves one client per monitor socket: a second one is queued without a greeting.
	 * Don't spend the whole upgrade's time budget finding that out. */
	uint64_t greet = qu_now_us() + QMP_GREETING_TIMEOUT_US;
	int r = qu_qmp_attach(fd, greet < deadline_us ? greet : deadline_us, out);
	if (r == -ETIMEDOUT)
		return qu_err(r, "QMP socket %s did not greet within %u s: another client probably holds "
			      "the monitor (QEMU serves one client at a time); disconnect it or give "
			      "another monitor with --qmp", path, QMP_GREETING_TIMEOUT_US / 1000000u);
	return r < 0 ? qu_err_wrap(r, "QMP socket %s", path) : 0;
}
