/* COLO's filters, chardevs and colo-compare on both QEMUs (wiring.h). The shape is QEMU's
 * docs/system/qemu-colo.rst, as measured in docs/standby-research.md (colo-pair.sh), with the
 * primary connecting to the secondary (so that only the agent's host listens) and TLS on both
 * wires between the hosts. */
#include "remote/standby/wiring.h"
#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "upgrade/io.h"
#include "upgrade/kv.h"
#include "upgrade/log.h"

#include <errno.h>
#include <stdarg.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The ids, on the secondary: the listeners and filters. */
#define SEC_IN QU_COLO_ID_PREFIX "in"           /* the primary's mirrored tx arrives here */
#define SEC_OUT QU_COLO_ID_PREFIX "out"         /* the secondary's output leaves for colo-compare */
#define SEC_REDIR_IN QU_COLO_ID_PREFIX "redir-in"
#define SEC_REDIR_OUT QU_COLO_ID_PREFIX "redir-out"
#define SEC_REWRITER QU_COLO_ID_PREFIX "rewriter"

/* On the primary: the two wires, the local pairs, the filters and colo-compare. */
#define PRI_MIRROR QU_COLO_ID_PREFIX "mirror"       /* client of SEC_IN */
#define PRI_COMPARE QU_COLO_ID_PREFIX "compare"     /* client of SEC_OUT */
#define PRI_PIN_A QU_COLO_ID_PREFIX "pin-a"         /* the redirector's end of the primary's rx */
#define PRI_PIN_B QU_COLO_ID_PREFIX "pin-b"         /* colo-compare's primary_in */
#define PRI_POUT_A QU_COLO_ID_PREFIX "pout-a"       /* colo-compare's outdev */
#define PRI_POUT_B QU_COLO_ID_PREFIX "pout-b"       /* the redirector that puts it back */
#define PRI_F_MIRROR QU_COLO_ID_PREFIX "f-mirror"
#define PRI_F_BACK QU_COLO_ID_PREFIX "f-back"
#define PRI_F_HOLD QU_COLO_ID_PREFIX "f-hold"
#define PRI_IOTHREAD QU_COLO_ID_PREFIX "iothread"
#define PRI_COMPARE_OBJ QU_COLO_ID_PREFIX "colo-compare"

int qu_colo_id_ok(const char *id)
{
	size_t n = strlen(id);
	return n > 0 && n < 64 && strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

int qu_colo_chardev_addr(const char *filename, char *out, size_t len)
{
	const char *tcp = strstr(filename, "tcp:");
	if (!tcp)
		return -ENOENT;
	tcp += 4;
	size_t n = strcspn(tcp, ",");
	const char *colon = memrchr(tcp, ':', n);
	if (!colon || colon == tcp || n >= len || strspn(colon + 1, "0123456789") != (size_t)(tcp + n - colon - 1) ||
	    colon + 1 == tcp + n)
		return -ENOENT;
	snprintf(out, len, "%.*s", (int)n, tcp);
	return 0;
}

/* "HOST:PORT" into host and port strings ([IPV6]:PORT too). */
static int split_addr(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    strlen(colon + 1) >= plen)
		return -EINVAL;
	const char *h = addr;
	size_t n = (size_t)(colon - addr);
	if (h[0] == '[' && n >= 2 && h[n - 1] == ']') {
		h++;
		n -= 2;
	}
	if (n >= hlen)
		return -EINVAL;
	snprintf(host, hlen, "%.*s", (int)n, h);
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}

static json_object *inet_addr(const char *host, const char *port)
{
	json_object *data = json_object_new_object(), *addr = json_object_new_object();
	json_object_object_add(data, "host", json_object_new_string(host));
	json_object_object_add(data, "port", json_object_new_string(port));
	json_object_object_add(addr, "type", json_object_new_string("inet"));
	json_object_object_add(addr, "data", data);
	return addr;
}

static json_object *fd_addr(const char *name)
{
	json_object *data = json_object_new_object(), *addr = json_object_new_object();
	json_object_object_add(data, "str", json_object_new_string(name));
	json_object_object_add(addr, "type", json_object_new_string("fd"));
	json_object_object_add(addr, "data", data);
	return addr;
}

/* chardev-add of a socket chardev at addr (consumed). */
static int chardev_add(struct qu_qmp *q, const char *id, json_object *addr, int server, const char *tls_id,
		       uint64_t deadline_us)
{
	json_object *data = json_object_new_object(), *backend = json_object_new_object(), *args = json_object_new_object();
	json_object_object_add(data, "addr", addr);
	json_object_object_add(data, "server", json_object_new_boolean(server));
	if (server)
		json_object_object_add(data, "wait", json_object_new_boolean(0));
	if (tls_id)
		json_object_object_add(data, "tls-creds", json_object_new_string(tls_id));
	json_object_object_add(backend, "type", json_object_new_string("socket"));
	json_object_object_add(backend, "data", data);
	json_object_object_add(args, "id", json_object_new_string(id));
	json_object_object_add(args, "backend", backend);
	return qu_qmp_execute(q, "chardev-add", args, -1, deadline_us, NULL);
}

/* object-add of qom_type id with string properties (key, value, ..., NULL). */
static int object_add(struct qu_qmp *q, const char *qom_type, const char *id, uint64_t deadline_us, ...)
{
	json_object *args = json_object_new_object();
	json_object_object_add(args, "qom-type", json_object_new_string(qom_type));
	json_object_object_add(args, "id", json_object_new_string(id));
	va_list ap;
	va_start(ap, deadline_us);
	for (const char *k; (k = va_arg(ap, const char *));)
		json_object_object_add(args, k, json_object_new_string(va_arg(ap, const char *)));
	va_end(ap);
	return qu_qmp_execute(q, "object-add", args, -1, deadline_us, NULL);
}

/* Where the listening chardev id waits, as query-chardev says. */
static int listening_addr(struct qu_qmp *q, const char *id, uint64_t deadline_us, char *out, size_t len)
{
	json_object *list = NULL;
	int r = qu_qmp_query_list(q, "query-chardev", deadline_us, &list), found = -ENOENT;
	if (r < 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *c = json_object_array_get_idx(list, i);
		if (!strcmp(qu_json_member_str(c, "label"), id)) {
			found = qu_colo_chardev_addr(qu_json_member_str(c, "filename"), out, len);
			break;
		}
	}
	json_object_put(list);
	return found < 0 ? qu_err(found, "the secondary QEMU does not say where chardev %s listens", id) : 0;
}

int qu_colo_secondary_wire(struct qu_qmp *q, const char *host, const char *netdev, const char *tls_id,
			   uint64_t deadline_us, char *reply, size_t len)
{
	static const char *const caps[] = { "x-colo", "return-path" };
	static const int on[] = { 1, 1 };
	char in[160], out[160];
	int r;
	if (!qu_colo_id_ok(netdev))
		return qu_err(-EINVAL, "standby: netdev id '%s' is not one this agent passes to QEMU", netdev);
	if ((r = chardev_add(q, SEC_IN, inet_addr(host, "0"), 1, tls_id, deadline_us)) < 0 ||
	    (r = chardev_add(q, SEC_OUT, inet_addr(host, "0"), 1, tls_id, deadline_us)) < 0 ||
	    (r = object_add(q, "filter-redirector", SEC_REDIR_IN, deadline_us, "netdev", netdev, "queue", "tx", "indev",
			    SEC_IN, NULL)) < 0 ||
	    (r = object_add(q, "filter-redirector", SEC_REDIR_OUT, deadline_us, "netdev", netdev, "queue", "rx",
			    "outdev", SEC_OUT, NULL)) < 0 ||
	    (r = object_add(q, "filter-rewriter", SEC_REWRITER, deadline_us, "netdev", netdev, "queue", "all", NULL)) < 0 ||
	    (r = qu_mig_capabilities(q, 2, caps, on, deadline_us)) < 0)
		return qu_err_wrap(r, "wiring the secondary");
	if ((r = listening_addr(q, SEC_IN, deadline_us, in, sizeof(in))) < 0 ||
	    (r = listening_addr(q, SEC_OUT, deadline_us, out, sizeof(out))) < 0)
		return r;
	reply[0] = '\0';
	qu_kv_add(reply, len, "mirror", in);
	qu_kv_add(reply, len, "compare", out);
	return 0;
}

/* A connected pair of local sockets as two chardevs: each end handed over with getfd and
 * taken by a client-mode socket chardev. */
static int local_pair(struct qu_qmp *q, const char *a, const char *b, uint64_t deadline_us)
{
	int sv[2], r = 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return qu_err(-errno, "socketpair: %s", strerror(errno));
	const char *ids[2] = { a, b };
	for (int i = 0; i < 2 && r == 0; i++) {
		json_object *args = json_object_new_object();
		json_object_object_add(args, "fdname", json_object_new_string(ids[i]));
		r = qu_qmp_execute(q, "getfd", args, sv[i], deadline_us, NULL);
		if (r == 0)
			r = chardev_add(q, ids[i], fd_addr(ids[i]), 0, NULL, deadline_us);
	}
	close(sv[0]);
	close(sv[1]);
	return r;
}

int qu_colo_primary_wire(struct qu_qmp *q, const char *netdev, const char *mirror_addr, const char *compare_addr,
			 const char *tls_id, uint64_t deadline_us)
{
	char mh[128], mp[8], ch[128], cp[8];
	int r;
	if (!qu_colo_id_ok(netdev))
		return qu_err(-EINVAL, "netdev id '%s' cannot be named to QEMU", netdev);
	if (split_addr(mirror_addr, mh, sizeof(mh), mp, sizeof(mp)) < 0 ||
	    split_addr(compare_addr, ch, sizeof(ch), cp, sizeof(cp)) < 0)
		return qu_err(-EPROTO, "the agent gave no usable address for the secondary's filters ('%s', '%s')",
			      mirror_addr, compare_addr);
	if ((r = chardev_add(q, PRI_MIRROR, inet_addr(mh, mp), 0, tls_id, deadline_us)) < 0 ||
	    (r = chardev_add(q, PRI_COMPARE, inet_addr(ch, cp), 0, tls_id, deadline_us)) < 0 ||
	    (r = local_pair(q, PRI_PIN_A, PRI_PIN_B, deadline_us)) < 0 ||
	    (r = local_pair(q, PRI_POUT_A, PRI_POUT_B, deadline_us)) < 0 ||
	    (r = object_add(q, "iothread", PRI_IOTHREAD, deadline_us, NULL)) < 0 ||
	    /* colo-compare first: the filters that feed it must find their peers connected. */
	    (r = object_add(q, "colo-compare", PRI_COMPARE_OBJ, deadline_us, "primary_in", PRI_PIN_B, "secondary_in",
			    PRI_COMPARE, "outdev", PRI_POUT_A, "iothread", PRI_IOTHREAD, NULL)) < 0 ||
	    (r = object_add(q, "filter-mirror", PRI_F_MIRROR, deadline_us, "netdev", netdev, "queue", "tx", "outdev",
			    PRI_MIRROR, NULL)) < 0 ||
	    (r = object_add(q, "filter-redirector", PRI_F_BACK, deadline_us, "netdev", netdev, "queue", "rx", "indev",
			    PRI_POUT_B, NULL)) < 0 ||
	    (r = object_add(q, "filter-redirector", PRI_F_HOLD, deadline_us, "netdev", netdev, "queue", "rx", "outdev",
			    PRI_PIN_A, NULL)) < 0)
		return qu_err_wrap(r, "wiring the primary");
	return 0;
}


/* Whether QEMU's error says the thing is not there (so there is nothing to remove). */
static int absent(void)
{
	const char *m = qu_err_msg();
	return strstr(m, "not found") || strstr(m, "doesn't exist") || strstr(m, "not exist") || strstr(m, "No such");
}

/* object-del or chardev-remove of each id; what is not there is skipped. */
static int remove_all(struct qu_qmp *q, const char *cmd, const char *what, const char *const *ids, size_t n,
		      uint64_t deadline_us)
{
	int left = 0;
	for (size_t i = 0; i < n; i++) {
		json_object *args = json_object_new_object();
		json_object_object_add(args, "id", json_object_new_string(ids[i]));
		if (qu_qmp_execute(q, cmd, args, -1, deadline_us, NULL) < 0 && !absent()) {
			qu_info("standby: cannot remove %s %s: %s", what, ids[i], qu_err_msg());
			left++;
		}
		qu_err_clear();
	}
	return left;
}

int qu_colo_secondary_unwire(struct qu_qmp *q, uint64_t deadline_us)
{
	static const char *const objects[] = { SEC_REDIR_OUT, SEC_REDIR_IN, SEC_REWRITER };
	static const char *const chardevs[] = { SEC_IN, SEC_OUT };
	/* The capabilities go back to a fresh QEMU's: with x-colo left on, the next migration of
	 * the guest that runs here now (an upgrade, a move, its own protection) would be COLO. */
	static const char *const caps[] = { "x-colo", "return-path" };
	static const int off[] = { 0, 0 };
	int left = remove_all(q, "object-del", "object", objects, 3, deadline_us) +
		   remove_all(q, "chardev-remove", "chardev", chardevs, 2, deadline_us);
	if (qu_mig_capabilities(q, 2, caps, off, deadline_us) < 0) {
		qu_info("standby: cannot turn x-colo and return-path off: %s", qu_err_msg());
		qu_err_clear();
		left++;
	}
	return left;
}

int qu_colo_primary_unwire(struct qu_qmp *q, uint64_t deadline_us)
{
	/* The filter that holds the guest's output goes first: from then on nothing is held. */
	static const char *const objects[] = { PRI_F_HOLD, PRI_F_BACK, PRI_F_MIRROR, PRI_COMPARE_OBJ, PRI_IOTHREAD };
	static const char *const chardevs[] = { PRI_MIRROR, PRI_COMPARE, PRI_PIN_A, PRI_PIN_B, PRI_POUT_A, PRI_POUT_B };
	int left = remove_all(q, "object-del", "object", objects, 5, deadline_us) +
		   remove_all(q, "chardev-remove", "chardev", chardevs, 6, deadline_us);
	/* A getfd that no chardev took (a failed wiring) is closed too. */
	for (size_t i = 0; i < 6; i++) {
		json_object *args = json_object_new_object();
		json_object_object_add(args, "fdname", json_object_new_string(chardevs[i]));
		qu_qmp_execute(q, "closefd", args, -1, deadline_us, NULL);
		qu_err_clear();
	}
	return left;
}
