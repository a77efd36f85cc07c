/* The primary's COLO migration connection and its byte count, from sock_diag (traffic.h). */
#include "remote/standby/traffic.h"
#include "upgrade/fdpass/fdtable.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h> /* glibc's struct tcp_info ends before tcpi_bytes_acked */
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The kernel's answers are read into this; a dump comes in several. */
#define DIAG_BUF 32768
#define DIAG_TIMEOUT_S 2
#define TCP_ESTABLISHED_STATE 1 /* include/net/tcp_states.h */

/* "tcp:ADDR:PORT" into family, address (network order, 16 bytes) and port. */
static int parse_uri(const char *uri, int *family, uint32_t addr[4], uint16_t *port)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(uri, ':');
	if (strncmp(uri, "tcp:", 4) || !colon || colon <= uri + 4 || (size_t)(colon - uri - 4) >= sizeof(host))
		return -EINVAL;
	memcpy(host, uri + 4, (size_t)(colon - uri - 4));
	host[colon - uri - 4] = '\0';
	char *end;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (*end || end == colon + 1 || p == 0 || p > 65535)
		return -EINVAL;
	*port = (uint16_t)p;
	memset(addr, 0, 16);
	size_t n = strlen(host);
	if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
		host[n - 1] = '\0';
		*family = AF_INET6;
		return inet_pton(AF_INET6, host + 1, addr) == 1 ? 0 : -EINVAL;
	}
	*family = AF_INET;
	return inet_pton(AF_INET, host, addr) == 1 ? 0 : -EINVAL;
}

/* One socket the kernel described: its message and, when asked for and sent, its tcp_info
 * (info_len bytes of it: an older kernel sends less). */
typedef int (*diag_fn)(const struct inet_diag_msg *m, const struct tcp_info *info, size_t info_len, void *arg);

/* The attributes after the message: INET_DIAG_INFO's payload, bounded by the message. */
static const void *find_info(const struct nlmsghdr *h, size_t *len)
{
	size_t off = NLMSG_LENGTH(sizeof(struct inet_diag_msg));
	off = NLMSG_ALIGN(off);
	while (off + sizeof(struct nlattr) <= h->nlmsg_len) {
		const struct nlattr *a = (const void *)((const char *)h + off);
		if (a->nla_len < sizeof(*a) || off + a->nla_len > h->nlmsg_len)
			return NULL;
		if ((a->nla_type & NLA_TYPE_MASK) == INET_DIAG_INFO) {
			*len = a->nla_len - NLA_HDRLEN;
			return (const char *)a + NLA_HDRLEN;
		}
		off += NLA_ALIGN(a->nla_len);
	}
	return NULL;
}

/* A request to the kernel's TCP diagnostics: a dump of the established sockets of a family,
 * or (dump 0) the one socket req->id names. Calls fn for each socket described; stops at its
 * first non-zero return and returns it; 0 at the end; -errno (-ENOENT: no such socket). A
 * dump left before its end goes with the netlink socket. */
static int diag(const struct inet_diag_req_v2 *req, int dump, diag_fn fn, void *arg)
{
	int s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (s < 0)
		return -errno;
	/* The kernel answers at once; the bound is for a supervisor that must never wait. */
	struct timeval tv = { .tv_sec = DIAG_TIMEOUT_S };
	if (setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		int e = -errno;
		close(s);
		return e;
	}
	struct {
		struct nlmsghdr h;
		struct inet_diag_req_v2 r;
	} msg = { .h = { .nlmsg_len = sizeof(msg), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			 .nlmsg_flags = NLM_F_REQUEST | (dump ? NLM_F_DUMP : 0), .nlmsg_seq = 1 },
		  .r = *req };
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	int r = sendto(s, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0 ? -errno : 0;
	char *buf = r == 0 ? malloc(DIAG_BUF) : NULL;
	if (r == 0 && !buf)
		r = -ENOMEM;
	for (int more = r == 0; more;) {
		ssize_t n = recv(s, buf, DIAG_BUF, 0);
		if (n < 0) {
			r = -errno;
			break;
		}
		size_t left = (size_t)n;
		for (const struct nlmsghdr *h = (const void *)buf; more && NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
			if (h->nlmsg_type == NLMSG_DONE) {
				/* A dump's end carries its error, if any. */
				const int *e = NLMSG_DATA(h);
				if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(*e)) && *e < 0)
					r = *e;
				more = 0;
			} else if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);
				r = h->nlmsg_len >= NLMSG_LENGTH(sizeof(*e)) && e->error < 0 ? e->error : -EIO;
				more = 0;
			} else if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
				   h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
				size_t info_len = 0;
				const void *info = find_info(h, &info_len);
				struct tcp_info ti;
				memset(&ti, 0, sizeof(ti));
				if (info)
					memcpy(&ti, info, info_len < sizeof(ti) ? info_len : sizeof(ti));
				r = fn(NLMSG_DATA(h), info ? &ti : NULL, info_len, arg);
				more = dump && r == 0; /* not dumping: the one socket asked for */
			}
		}
	}
	free(buf);
	close(s);
	return r;
}

/* find: the socket inodes of QEMU's table, and the connection's addresses. */
struct want {
	unsigned long *inodes;
	size_t ninodes;
	uint32_t dst[4];
	uint16_t port;
	struct inet_diag_sockid found;
};

static int match(const struct inet_diag_msg *m, const struct tcp_info *info, size_t info_len, void *arg)
{
	(void)info;
	(void)info_len;
	struct want *w = arg;
	if (ntohs(m->id.idiag_dport) != w->port || memcmp(m->id.idiag_dst, w->dst, sizeof(w->dst)))
		return 0;
	for (size_t i = 0; i < w->ninodes; i++)
		if (w->inodes[i] == m->idiag_inode) {
			w->found = m->id;
			return 1;
		}
	return 0;
}

int qu_colo_traffic_find(pid_t pid, const char *uri, struct qu_colo_traffic *t)
{
	struct want w = { 0 };
	int r = parse_uri(uri, &t->family, w.dst, &w.port);
	if (r < 0)
		return r;
	struct qu_fdtab tab;
	if ((r = qu_fdtab_read(pid, &tab)) < 0)
		return r;
	w.inodes = calloc(tab.n ? tab.n : 1, sizeof(*w.inodes));
	for (size_t i = 0; w.inodes && i < tab.n; i++) {
		unsigned long ino;
		int n = 0;
		if (sscanf(tab.e[i].link, "socket:[%lu]%n", &ino, &n) == 1 && !tab.e[i].link[n])
			w.inodes[w.ninodes++] = ino;
	}
	qu_fdtab_free(&tab);
	if (!w.inodes)
		return -ENOMEM;
	struct inet_diag_req_v2 req = { .sdiag_family = (uint8_t)t->family, .sdiag_protocol = IPPROTO_TCP,
					.idiag_states = 1u << TCP_ESTABLISHED_STATE };
	r = w.ninodes ? diag(&req, 1, match, &w) : 0;
	free(w.inodes);
	if (r < 0)
		return r;
	if (r == 0)
		return -ENOENT;
	t->id = w.found;
	return 0;
}

static int acked(const struct inet_diag_msg *m, const struct tcp_info *info, size_t info_len, void *arg)
{
	(void)m;
	/* A closed connection lingers as a time-wait socket, which has no tcp_info. */
	if (!info)
		return -ESTALE;
	/* tcpi_bytes_acked came with Linux 4.1: an older kernel's shorter answer says nothing. */
	if (info_len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(info->tcpi_bytes_acked))
		return -EOPNOTSUPP;
	*(unsigned long long *)arg = info->tcpi_bytes_acked;
	return 0;
}

int qu_colo_traffic_bytes(const struct qu_colo_traffic *t, unsigned long long *bytes)
{
	struct inet_diag_req_v2 req = { .sdiag_family = (uint8_t)t->family, .sdiag_protocol = IPPROTO_TCP,
					.idiag_ext = 1u << (INET_DIAG_INFO - 1), .idiag_states = ~0u, .id = t->id };
	unsigned long long b = 0;
	int r = diag(&req, 0, acked, &b);
	if (r == -ENOENT)
		return -ESTALE;
	if (r == 0)
		*bytes = b;
	return r;
}
