#include "remote/tls.h"
#include "qemu-integration/qmp.h"
#include "remote/tcp/seal.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* QEMU's PSK file: "username:hexkey" lines; QEMU's default username is "qemu". */
static int write_key(const struct qu_seal *seal, const char *dir, uid_t uid, gid_t gid)
{
	static const char label[] = "qemu-upgrade:tls";
	unsigned char psk[32];
	unsigned int n = 0;
	char path[PATH_MAX + 16], line[80];
	if (!HMAC(EVP_sha256(), seal->key, sizeof(seal->key), (const unsigned char *)label, sizeof(label) - 1, psk, &n) ||
	    n != sizeof(psk))
		return -EIO;
	int len = snprintf(line, sizeof(line), "qemu:");
	for (size_t i = 0; i < sizeof(psk); i++)
		len += snprintf(line + len, sizeof(line) - (size_t)len, "%02x", psk[i]);
	line[len++] = '\n';
	snprintf(path, sizeof(path), "%s/keys.psk", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int r = qu_write_full(fd, line, (size_t)len);
	if (r == 0 && fchown(fd, uid, gid) < 0)
		r = -errno;
	close(fd);
	return r;
}

int qu_tls_add(struct qu_qmp *q, const struct qu_seal *seal, const char *endpoint, uid_t uid, gid_t gid,
	       uint64_t deadline_us, struct qu_tls *tls)
{
	unsigned rnd = 0;
	memset(tls, 0, sizeof(*tls));
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		return qu_err(-EIO, "no random numbers");
	/* Not under the state directory: that is root's alone, and QEMU runs as the VM's user. */
	snprintf(tls->dir, sizeof(tls->dir), "/run/qemu-upgrade-tls-%d-%08x", (int)getpid(), rnd);
	if (mkdir(tls->dir, 0700) < 0) {
		int e = errno;
		tls->dir[0] = '\0';
		return qu_err(-e, "cannot create a directory for the TLS key: %s", strerror(e));
	}
	int r = chown(tls->dir, uid, gid) < 0 ? -errno : write_key(seal, tls->dir, uid, gid);
	if (r < 0) {
		qu_tls_remove(NULL, tls, deadline_us);
		return qu_err(r, "cannot write the TLS key in %s: %s", tls->dir, strerror(-r));
	}
	/* One left by an upgrade whose cleanup failed would make the id taken. */
	json_object *args = json_object_new_object();
	json_object_object_add(args, "id", json_object_new_string(QU_TLS_ID));
	qu_qmp_execute(q, "object-del", args, -1, deadline_us, NULL);
	args = json_object_new_object();
	json_object_object_add(args, "qom-type", json_object_new_string("tls-creds-psk"));
	json_object_object_add(args, "id", json_object_new_string(QU_TLS_ID));
	json_object_object_add(args, "dir", json_object_new_string(tls->dir));
	json_object_object_add(args, "endpoint", json_object_new_string(endpoint));
	if ((r = qu_qmp_execute(q, "object-add", args, -1, deadline_us, NULL)) < 0) {
		qu_tls_remove(NULL, tls, deadline_us);
		return qu_err_wrap(r, "adding TLS credentials to the %s QEMU", !strcmp(endpoint, "client") ? "old" : "new");
	}
	tls->added = 1;
	return 0;
}

void qu_tls_remove(struct qu_qmp *q, struct qu_tls *tls, uint64_t deadline_us)
{
	if (q && tls->added) {
		json_object *args = json_object_new_object();
		json_object_object_add(args, "id", json_object_new_string(QU_TLS_ID));
		qu_qmp_execute(q, "object-del", args, -1, deadline_us, NULL);
	}
	tls->added = 0;
	if (tls->dir[0]) {
		char path[PATH_MAX + 16];
		snprintf(path, sizeof(path), "%s/keys.psk", tls->dir);
		unlink(path);
		rmdir(tls->dir);
		tls->dir[0] = '\0';
	}
}
