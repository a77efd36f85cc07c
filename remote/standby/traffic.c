/* The primary's COLO migration connection and its byte count (traffic.h). */
#include "remote/standby/traffic.h"
#include "upgrade/fdpass/fdtable.h"
#include "upgrade/fdpass/pidfd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* glibc's struct tcp_info ends before tcpi_bytes_acked */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* The socket's peer as the agent writes a migrate URI (remote/target.c): "tcp:ADDR:PORT",
 * an IPv4-mapped address as IPv4, IPv6 in brackets. 0, or -errno when it is no TCP socket. */
static int peer_uri(int sock, char *buf, size_t len)
{
	int type = 0, proto = 0;
	socklen_t l = sizeof(type);
	if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &l) < 0)
		return -errno;
	l = sizeof(proto);
	if (type != SOCK_STREAM || getsockopt(sock, SOL_SOCKET, SO_PROTOCOL, &proto, &l) < 0 || proto != IPPROTO_TCP)
		return -ENOTSOCK;
	struct sockaddr_storage ss;
	l = sizeof(ss);
	if (getpeername(sock, (struct sockaddr *)&ss, &l) < 0)
		return -errno;
	char ip[INET6_ADDRSTRLEN];
	unsigned port;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		port = ntohs(a->sin_port);
		return snprintf(buf, len, "tcp:%s:%u", ip, port) < (int)len ? 0 : -ENAMETOOLONG;
	}
	if (ss.ss_family != AF_INET6)
		return -EAFNOSUPPORT;
	const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
	port = ntohs(a->sin6_port);
	if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
		inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], ip, sizeof(ip));
		return snprintf(buf, len, "tcp:%s:%u", ip, port) < (int)len ? 0 : -ENAMETOOLONG;
	}
	inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
	return snprintf(buf, len, "tcp:[%s]:%u", ip, port) < (int)len ? 0 : -ENAMETOOLONG;
}

/* The copy of QEMU's fd, if it is the connection to uri; -ESTALE when it is something else. */
static int copy_if_connection(int pidfd, int fd, const char *uri)
{
	int sock = qu_pidfd_getfd(pidfd, fd);
	if (sock < 0)
		return sock == -EBADF ? -ESTALE : sock;
	char peer[96];
	if (peer_uri(sock, peer, sizeof(peer)) < 0 || strcmp(peer, uri)) {
		close(sock);
		return -ESTALE;
	}
	return sock;
}

int qu_colo_traffic_find(pid_t pid, int pidfd, const char *uri)
{
	struct qu_fdtab t;
	int r = qu_fdtab_read(pid, &t), found = -ENOENT;
	if (r < 0)
		return r;
	for (size_t i = 0; i < t.n && found < 0; i++) {
		if (!t.e[i].stat_ok || !S_ISSOCK(t.e[i].mode))
			continue;
		int sock = copy_if_connection(pidfd, t.e[i].fd, uri);
		if (sock >= 0) {
			close(sock);
			found = t.e[i].fd;
		}
	}
	qu_fdtab_free(&t);
	return found;
}

int qu_colo_traffic_bytes(int pidfd, int fd, const char *uri, unsigned long long *bytes)
{
	int sock = copy_if_connection(pidfd, fd, uri);
	if (sock < 0)
		return sock;
	struct tcp_info ti;
	socklen_t l = sizeof(ti);
	memset(&ti, 0, sizeof(ti));
	int r = getsockopt(sock, IPPROTO_TCP, TCP_INFO, &ti, &l) < 0 ? -errno : 0;
	close(sock);
	/* tcpi_bytes_acked came with Linux 4.1: an older kernel's shorter answer says nothing. */
	if (!r && l < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked))
		r = -EOPNOTSUPP;
	if (!r)
		*bytes = ti.tcpi_bytes_acked;
	return r;
}
