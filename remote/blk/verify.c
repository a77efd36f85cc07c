#include "remote/blk/verify.h"
#include "upgrade/kv.h"
#include "remote/recreate.h"
#include "upgrade/log.h"
#include "upgrade/run.h"
#include "upgrade/safepath.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SECTOR 512u
#define CHUNK (1u << 20)
#define MAP_MAX (32u << 20) /* qemu-img map's answer: about 130 bytes an extent */
#define FILES_MAX 9

struct sum_job {
	const char *path, *format;
	const char *const *chain;
	int nchain, top_only;
	uint64_t deadline_us;
	char hex[QU_DIGEST_HEX];
	char why[512];
};

static int open_safe(const char *path)
{
	struct qu_safe_dir d;
	int r = qu_safe_open_dir(path, (uid_t)-1, 0, &d);
	if (r < 0)
		return r;
	r = qu_safe_open(&d, O_RDONLY);
	qu_safe_close(&d);
	return r;
}

static int all_zero(const unsigned char *b, size_t n)
{
	return n == 0 || (b[0] == 0 && !memcmp(b, b + 1, n - 1));
}

/* One extent of the disk: each sector as (offset, 'Z') or (offset, 'D', bytes); with
 * zeros_count 0, zero sectors are left out. */
static int feed_extent(EVP_MD_CTX *ctx, int fd, unsigned long long start, unsigned long long length,
		       long long offset, int zeros_count, unsigned char *buf)
{
	for (unsigned long long done = 0; done < length;) {
		size_t n = length - done > CHUNK ? CHUNK : (size_t)(length - done);
		if (fd >= 0) {
			ssize_t got = pread(fd, buf, n, (off_t)(offset + (long long)done));
			if (got < 0)
				return -errno;
			memset(buf + got, 0, n - (size_t)got);
		} else {
			memset(buf, 0, n);
		}
		for (size_t s = 0; s < n; s += SECTOR) {
			size_t l = n - s < SECTOR ? n - s : SECTOR;
			uint64_t at = start + done + s;
			unsigned char kind = all_zero(buf + s, l) ? 'Z' : 'D';
			if (kind == 'Z' && !zeros_count)
				continue;
			EVP_DigestUpdate(ctx, &at, sizeof(at));
			EVP_DigestUpdate(ctx, &kind, 1);
			if (kind == 'D')
				EVP_DigestUpdate(ctx, buf + s, l);
		}
		done += n;
	}
	return 0;
}

static int sum_map(struct sum_job *j, json_object *map, const int *fds, int nfds)
{
	unsigned char *buf = malloc(CHUNK), md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int r = 0;
	if (!buf || !ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < json_object_array_length(map) && r == 0; i++) {
		json_object *e = json_object_array_get_idx(map, i), *v;
		long long start = json_object_object_get_ex(e, "start", &v) ? json_object_get_int64(v) : -1;
		long long length = json_object_object_get_ex(e, "length", &v) ? json_object_get_int64(v) : -1;
		int depth = json_object_object_get_ex(e, "depth", &v) ? json_object_get_int(v) : -1;
		int present = !json_object_object_get_ex(e, "present", &v) || json_object_get_boolean(v);
		int zero = json_object_object_get_ex(e, "zero", &v) && json_object_get_boolean(v);
		int data = json_object_object_get_ex(e, "data", &v) && json_object_get_boolean(v);
		long long offset = json_object_object_get_ex(e, "offset", &v) ? json_object_get_int64(v) : -1;
		if (start < 0 || length < 0 || depth < 0) {
			snprintf(j->why, sizeof(j->why), "qemu-img map gave an extent without start, length or depth");
			r = -EBADMSG;
			break;
		}
		if (j->top_only && (depth != 0 || !present))
			continue; /* not the top layer's */
		if (!data || zero) {
			if (j->top_only) /* the top masks what is below with zeros: that counts */
				r = feed_extent(ctx, -1, (unsigned long long)start, (unsigned long long)length, 0, 1, buf);
			continue;
		}
		if (offset < 0 || depth >= nfds) {
			snprintf(j->why, sizeof(j->why), "the data at %lld (image %d of the chain) cannot be read from "
				 "its file (compressed or encrypted?)", start, depth);
			r = -EOPNOTSUPP;
			break;
		}
		r = feed_extent(ctx, fds[depth], (unsigned long long)start, (unsigned long long)length, offset,
				j->top_only, buf);
		if (r < 0)
			snprintf(j->why, sizeof(j->why), "cannot read image %d of the chain: %s", depth, strerror(-r));
	}
	if (r == 0) {
		EVP_DigestFinal_ex(ctx, md, &mdlen);
		qu_hex(md, mdlen < 32 ? mdlen : 32, j->hex);
	}
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
	return r;
}

/* In a child that is the VM's user. */
static int sum_as_user(void *arg)
{
	struct sum_job *j = arg;
	char img[PATH_MAX], *out = malloc(MAP_MAX);
	int fds[FILES_MAX], nfds = 0, r;
	if (!out)
		return -ENOMEM;
	if (!qu_find_qemu_img(img, sizeof(img))) {
		snprintf(j->why, sizeof(j->why), "qemu-img is not installed");
		r = -ENOENT;
		goto out;
	}
	char *argv[] = { img, (char *)"map", (char *)"--output=json", (char *)"-U", (char *)"-f", (char *)j->format,
			 (char *)j->path, NULL };
	r = qu_run_capture(img, -1, argv, (uid_t)-1, (gid_t)-1, j->deadline_us, out, MAP_MAX);
	if (r != 0) {
		snprintf(j->why, sizeof(j->why), "qemu-img map failed: %.400s", r < 0 ? strerror(-r) : out);
		r = r < 0 ? r : -EIO;
		goto out;
	}
	json_object *map = json_tokener_parse(out);
	if (!map || !json_object_is_type(map, json_type_array)) {
		json_object_put(map);
		snprintf(j->why, sizeof(j->why), "qemu-img map's answer is not a JSON list (too long?)");
		r = -EBADMSG;
		goto out;
	}
	for (int i = 0; i <= (j->top_only ? 0 : j->nchain) && i < FILES_MAX; i++) {
		const char *p = i == 0 ? j->path : j->chain[i - 1];
		if ((fds[nfds] = open_safe(p)) < 0) {
			r = fds[nfds];
			snprintf(j->why, sizeof(j->why), "cannot open %s: %s", p, strerror(-r));
			break;
		}
		nfds++;
	}
	if (r == 0)
		r = sum_map(j, map, fds, nfds);
	json_object_put(map);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
out:
	free(out);
	return r;
}

int qu_verify_sum(const struct qu_ident *who, const char *path, const char *format, const char *const *chain,
		  int nchain, int top_only, uint64_t deadline_us, char hex[QU_DIGEST_HEX])
{
	struct sum_job *j = mmap(NULL, sizeof(*j), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (j == MAP_FAILED)
		return qu_err(-errno, "mmap: %s", strerror(errno));
	memset(j, 0, sizeof(*j));
	*j = (struct sum_job){ .path = path, .format = format, .chain = chain, .nchain = nchain, .top_only = top_only,
			       .deadline_us = deadline_us };
	int r = qu_run_as(who, sum_as_user, j);
	if (r == 0)
		snprintf(hex, QU_DIGEST_HEX, "%s", j->hex);
	else
		r = qu_err(r, "summing %s: %s", path, j->why[0] ? j->why : strerror(-r));
	munmap(j, sizeof(*j));
	return r;
}
