#include "remote/tls.h"
#include "qemu-integration/qmp.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

int qu_psk_random(struct qu_psk *psk)
{
	return getrandom(psk->key, sizeof(psk->key), 0) == (ssize_t)sizeof(psk->key) ? 0 : -EIO;
}

void qu_psk_hex(const struct qu_psk *psk, char out[QU_PSK_HEX_LEN])
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < QU_PSK_LEN; i++) {
		out[2 * i] = digits[psk->key[i] >> 4];
		out[2 * i + 1] = digits[psk->key[i] & 15];
	}
	out[2 * QU_PSK_LEN] = '\0';
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int qu_psk_parse(const char *hex, struct qu_psk *psk)
{
	if (strnlen(hex, QU_PSK_HEX_LEN) != QU_PSK_HEX_LEN - 1)
		return -EINVAL;
	for (size_t i = 0; i < QU_PSK_LEN; i++) {
		int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		psk->key[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* QEMU's PSK file: "username:hexkey" lines; QEMU's default username is "qemu". */
static int write_key(const struct qu_psk *psk, const char *dir, uid_t uid, gid_t gid)
{
	char path[PATH_MAX + 16], line[80], hex[QU_PSK_HEX_LEN];
	qu_psk_hex(psk, hex);
	int len = snprintf(line, sizeof(line), "qemu:%s\n", hex);
	explicit_bzero(hex, sizeof(hex));
	snprintf(path, sizeof(path), "%s/keys.psk", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int r = qu_write_full(fd, line, (size_t)len);
	explicit_bzero(line, sizeof(line));
	if (r == 0 && fchown(fd, uid, gid) < 0)
		r = -errno;
	close(fd);
	return r;
}

int qu_tls_add(struct qu_qmp *q, const struct qu_psk *psk, const char *endpoint, uid_t uid, gid_t gid,
	       qu_tls_made_fn made, void *arg, uint64_t deadline_us, struct qu_tls *tls)
{
	unsigned rnd = 0;
	memset(tls, 0, sizeof(*tls));
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		return qu_err(-EIO, "no random numbers");
	/* Not under the state directory: that is root's alone, and QEMU runs as the VM's user. */
	snprintf(tls->dir, sizeof(tls->dir), "/run/qemu-upgrade-tls-%d-%08x", (int)getpid(), rnd);
	if (made) {
		char key[sizeof(tls->dir) + 16];
		snprintf(key, sizeof(key), "%s/keys.psk", tls->dir);
		made(key, arg);
		made(tls->dir, arg);
	}
	if (mkdir(tls->dir, 0700) < 0) {
		int e = errno;
		tls->dir[0] = '\0';
		return qu_err(-e, "cannot create a directory for the TLS key: %s", strerror(e));
	}
	int r = chown(tls->dir, uid, gid) < 0 ? -errno : write_key(psk, tls->dir, uid, gid);
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
