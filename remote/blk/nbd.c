#include "remote/blk/nbd.h"
#include "qemu-integration/qmp.h"
#include "remote/tcp/transport.h"
#include "upgrade/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NBD_FDNAME "qemu-upgrade-nbd"

int qu_nbd_export(struct qu_qmp *q, const char *host, const char *const *devices, size_t n, const char *tls_creds,
		  uint64_t deadline_us, char *addr, size_t len)
{
	char where[96];
	struct sockaddr_storage ss;
	socklen_t l = sizeof(ss);
	/* QEMU's NBD server does not say which port it got for port 0: it gets a socket that
	 * listens already, and its port is known. */
	snprintf(where, sizeof(where), "%s:0", host);
	int fd = qu_tcp_listen(where, 0), r;
	if (fd < 0)
		return fd;
	if (getsockname(fd, (struct sockaddr *)&ss, &l) < 0) {
		r = -errno;
		close(fd);
		return qu_err(r, "getsockname: %s", strerror(-r));
	}
	int port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						 : ((struct sockaddr_in6 *)&ss)->sin6_port);
	json_object *args = json_object_new_object();
	json_object_object_add(args, "fdname", json_object_new_string(NBD_FDNAME));
	r = qu_qmp_execute(q, "getfd", args, fd, deadline_us, NULL);
	close(fd);
	if (r < 0)
		return qu_err_wrap(r, "handing the NBD socket to the new QEMU");
	args = json_object_new_object();
	json_object *a = json_object_new_object(), *d = json_object_new_object();
	json_object_object_add(d, "str", json_object_new_string(NBD_FDNAME));
	json_object_object_add(a, "type", json_object_new_string("fd"));
	json_object_object_add(a, "data", d);
	json_object_object_add(args, "addr", a);
	if (tls_creds)
		json_object_object_add(args, "tls-creds", json_object_new_string(tls_creds));
	if ((r = qu_qmp_execute(q, "nbd-server-start", args, -1, deadline_us, NULL)) < 0)
		return qu_err_wrap(r, "the new QEMU's NBD server");
	for (size_t i = 0; i < n; i++) {
		/* nbd-server-add takes a -drive id as well as a node name (block-export-add wants
		 * the node, which for -drive has a different generated name in each QEMU). */
		args = json_object_new_object();
		json_object_object_add(args, "device", json_object_new_string(devices[i]));
		json_object_object_add(args, "name", json_object_new_string(devices[i]));
		json_object_object_add(args, "writable", json_object_new_boolean(1));
		if ((r = qu_qmp_execute(q, "nbd-server-add", args, -1, deadline_us, NULL)) < 0) {
			char msg[512];
			snprintf(msg, sizeof(msg), "%s", qu_err_msg());
			qu_nbd_stop(q, deadline_us);
			return qu_err(r, "exporting disk '%s' from the new QEMU: %s", devices[i], msg);
		}
	}
	snprintf(addr, len, "%s:%d", host, port);
	return 0;
}

int qu_nbd_stop(struct qu_qmp *q, uint64_t deadline_us)
{
	return qu_qmp_execute(q, "nbd-server-stop", NULL, -1, deadline_us, NULL);
}
