#include "remote/tcp/transport.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int qu_tcp_split(const char *hostport, int default_port, char *host, size_t len, int *port)
{
	const char *colon = strrchr(hostport, ':'), *end;
	*port = default_port;
	if (hostport[0] == '[') {
		/* [V6] or [V6]:PORT */
		end = strchr(hostport, ']');
		if (!end || (end[1] && end[1] != ':'))
			return -EINVAL;
		colon = end[1] == ':' ? end + 1 : NULL;
		hostport++;
	} else if (colon && strchr(hostport, ':') != colon) {
		colon = NULL; /* a bare IPv6 address */
		end = hostport + strlen(hostport);
	} else {
		end = colon ? colon : hostport + strlen(hostport);
	}
	if (colon) {
		char *stop;
		long p = strtol(colon + 1, &stop, 10);
		if (*stop || p < 0 || p > 65535 || stop == colon + 1)
			return -EINVAL;
		*port = (int)p;
	}
	size_t n = (size_t)(end - hostport);
	if (n >= len)
		return -ENAMETOOLONG;
	memcpy(host, hostport, n);
	host[n] = '\0';
	return 0;
}

static int resolve(const char *hostport, int default_port, int passive, struct addrinfo **res)
{
	char host[256], port[8];
	int p, r = qu_tcp_split(hostport, default_port, host, sizeof(host), &p);
	if (r < 0)
		return qu_err(r, "'%s' is not HOST, HOST:PORT or [IPV6]:PORT", hostport);
	snprintf(port, sizeof(port), "%d", p);
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = passive ? AI_PASSIVE : AI_ADDRCONFIG };
	int g = getaddrinfo(host[0] ? host : NULL, port, &hints, res);
	if (g)
		return qu_err(-EHOSTUNREACH, "cannot resolve '%s': %s", host, gai_strerror(g));
	return 0;
}

int qu_tcp_connect(const char *hostport, int default_port, uint64_t deadline_us)
{
	struct addrinfo *res;
	int r = resolve(hostport, default_port, 0, &res), fd = -1;
	if (r < 0)
		return r;
	r = -EHOSTUNREACH;
	for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			r = -errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
			r = -errno;
			qu_close(&fd);
			continue;
		}
		int pr = qu_poll_one(fd, POLLOUT, deadline_us), err = 0;
		socklen_t l = sizeof(err);
		if (pr < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0 || err) {
			r = pr < 0 ? pr : err ? -err : -errno;
			qu_close(&fd);
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		return qu_err(r, "cannot connect to the agent at %s: %s (is `qemu-upgrade agent` running there, "
			      "and its port open?)", hostport, strerror(-r));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* The stream code waits with poll and expects blocking writes. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

int qu_tcp_listen(const char *addrport, int default_port)
{
	char spec[300];
	/* A bare port number listens on every address. */
	if (strspn(addrport, "0123456789") == strlen(addrport))
		snprintf(spec, sizeof(spec), ":%s", addrport);
	else
		snprintf(spec, sizeof(spec), "%s", addrport);
	struct addrinfo *res;
	int r = resolve(spec, default_port, 1, &res), fd = -1;
	if (r < 0)
		return r;
	for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
		int one = 1;
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			r = -errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 8) < 0) {
			r = -errno;
			qu_close(&fd);
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		return qu_err(r, "cannot listen on %s: %s", addrport, strerror(-r));
	return fd;
}

int qu_tcp_local_host(int sock, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof(ss);
	char ip[INET6_ADDRSTRLEN];
	if (getsockname(sock, (struct sockaddr *)&ss, &l) < 0)
		return -errno;
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s", ip);
	} else {
		const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			inet_ntop(AF_INET, &a->s6_addr[12], ip, sizeof(ip));
			snprintf(buf, len, "%s", ip);
		} else {
			inet_ntop(AF_INET6, a, ip, sizeof(ip));
			snprintf(buf, len, "[%s]", ip);
		}
	}
	return 0;
}
