#include "remote/blk/chain.h"
#include "upgrade/kv.h"
#include "upgrade/log.h"
#include "upgrade/safepath.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK (64u * 1024u)

/* What the child (as the VM's user) found, in memory shared with us. */
struct fact_job {
	const char *path;
	int identity_only;
	struct qu_file_fact f;
	char why[256];
};

static const char *format_of(const unsigned char *h, size_t n)
{
	if (n >= 4 && !memcmp(h, "QFI\xfb", 4))
		return "qcow2";
	if (n >= 4 && !memcmp(h, "QED\0", 4))
		return "qed";
	if (n >= 4 && (!memcmp(h, "KDMV", 4) || !memcmp(h, "COWD", 4)))
		return "vmdk";
	if (n >= 8 && !memcmp(h, "vhdxfile", 8))
		return "vhdx";
	if (n >= 6 && !memcmp(h, "LUKS\xba\xbe", 6))
		return "luks";
	if (n >= 68 && h[64] == 0x7f && h[65] == 0x10 && h[66] == 0xda && h[67] == 0xbe)
		return "vdi";
	return "raw";
}

static int all_zero(const unsigned char *b, size_t n)
{
	return n == 0 || (b[0] == 0 && !memcmp(b, b + 1, n - 1));
}

/* Every allocated 64 KiB block, in order, with its offset; zero blocks left out. */
static int sum_file(int fd, unsigned long long size, char hex[QU_DIGEST_HEX], char *why, size_t len)
{
	unsigned char *buf = malloc(BLOCK), md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int r = 0;
	if (!buf || !ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		r = -ENOMEM;
		goto out;
	}
	unsigned long long next = 0; /* the first block not yet summed */
	for (off_t at = 0; (unsigned long long)at < size;) {
		off_t data = lseek(fd, at, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break;
		off_t hole = data < 0 ? -1 : lseek(fd, data, SEEK_HOLE);
		if (hole < 0) {
			r = -errno;
			snprintf(why, len, "cannot find its data: %s", strerror(errno));
			goto out;
		}
		unsigned long long b = (unsigned long long)data / BLOCK;
		if (b < next)
			b = next;
		for (; b * BLOCK < (unsigned long long)hole; b++) {
			ssize_t n = pread(fd, buf, BLOCK, (off_t)(b * BLOCK));
			if (n < 0) {
				r = -errno;
				snprintf(why, len, "cannot read it: %s", strerror(errno));
				goto out;
			}
			if (!all_zero(buf, (size_t)n)) {
				uint64_t off = b * BLOCK;
				EVP_DigestUpdate(ctx, &off, sizeof(off));
				EVP_DigestUpdate(ctx, buf, (size_t)n);
			}
		}
		next = b;
		at = hole;
	}
	EVP_DigestUpdate(ctx, &size, sizeof(size));
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	qu_hex(md, mdlen < 32 ? mdlen : 32, hex);
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
	return r;
}

/* In a child that is the VM's user. */
static int fact_as_user(void *arg)
{
	struct fact_job *j = arg;
	struct qu_safe_dir d;
	unsigned char head[512];
	struct stat st;
	int r = qu_safe_open_dir(j->path, (uid_t)-1, 0, &d);
	if (r < 0) {
		snprintf(j->why, sizeof(j->why), "%s", qu_err_msg());
		return r;
	}
	int fd = qu_safe_open(&d, O_RDONLY);
	qu_safe_close(&d);
	if (fd < 0) {
		snprintf(j->why, sizeof(j->why), "%s", fd == -ELOOP ? "it is a symbolic link" : strerror(-fd));
		return fd;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(j->why, sizeof(j->why), "it is not a regular file");
		return -EINVAL;
	}
	j->f.size = (unsigned long long)st.st_size;
	j->f.dev = st.st_dev;
	j->f.ino = st.st_ino;
	j->f.mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
	if (j->identity_only) {
		close(fd);
		return 0;
	}
	ssize_t n = pread(fd, head, sizeof(head), 0);
	snprintf(j->f.format, sizeof(j->f.format), "%s", format_of(head, n > 0 ? (size_t)n : 0));
	r = sum_file(fd, j->f.size, j->f.sum, j->why, sizeof(j->why));
	close(fd);
	return r;
}

static int describe(const struct qu_ident *who, const char *path, int identity_only, struct qu_file_fact *f)
{
	if (path[0] != '/')
		return qu_err(-EINVAL, "backing file '%s' is not an absolute path", path);
	struct fact_job *j = mmap(NULL, sizeof(*j), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (j == MAP_FAILED)
		return qu_err(-errno, "mmap: %s", strerror(errno));
	memset(j, 0, sizeof(*j));
	j->path = path;
	j->identity_only = identity_only;
	int r = qu_run_as(who, fact_as_user, j);
	if (r == 0)
		*f = j->f;
	else
		r = qu_err(r, "backing file %s: %s", path,
			   j->why[0] ? j->why : r == -ENOENT ? "it does not exist" : strerror(-r));
	munmap(j, sizeof(*j));
	return r;
}

int qu_chain_fact(const struct qu_ident *who, const char *path, struct qu_file_fact *f)
{
	return describe(who, path, 0, f);
}

int qu_chain_stat(const struct qu_ident *who, const char *path, struct qu_file_fact *f)
{
	return describe(who, path, 1, f);
}

void qu_chain_compare(const struct qu_file_fact *here, const struct qu_file_fact *there, char *why, size_t len)
{
	why[0] = '\0';
	if (strcmp(here->format, there->format))
		snprintf(why, len, "format %s here, %s there", here->format, there->format);
	else if (here->size != there->size)
		snprintf(why, len, "%llu bytes here, %llu there", here->size, there->size);
	else if (strcmp(here->sum, there->sum))
		snprintf(why, len, "same size (%llu bytes), other content (SHA-256 of its data %.16s... here, "
			 "%.16s... there)", here->size, here->sum, there->sum);
}

void qu_chain_fact_put(const struct qu_file_fact *f, char *text, size_t len)
{
	qu_kv_addf(text, len, "size", "%llu", f->size);
	qu_kv_add(text, len, "format", f->format);
	qu_kv_add(text, len, "sum", f->sum);
}

int qu_chain_fact_get(const char *text, struct qu_file_fact *f)
{
	memset(f, 0, sizeof(*f));
	long long size = qu_kv_num(text, "size", -1);
	if (size < 0 || qu_kv_get(text, "format", f->format, sizeof(f->format)) < 0 ||
	    qu_kv_get(text, "sum", f->sum, sizeof(f->sum)) < 0 || strlen(f->sum) != 64)
		return -EBADMSG;
	f->size = (unsigned long long)size;
	return 0;
}
