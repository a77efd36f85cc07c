#include "upgrade/libvirt.h"
#include "qemu-integration/argv.h"
#include "qemu-integration/opts.h"
#include "upgrade/io.h"
#include "upgrade/kv.h"
#include "upgrade/log.h"
#include "upgrade/safepath.h"
#include "upgrade/statedir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/SAX2.h>
#include <libxml/tree.h>

int qu_libvirt_name_ok(const char *name)
{
	size_t n = strnlen(name, QU_LIBVIRT_NAME_MAX + 1);
	if (n == 0 || n > QU_LIBVIRT_NAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		if (*c == '/' || *c < 0x20 || *c == 0x7f)
			return 0;
	return 1;
}

int qu_libvirt_name_from_argv(const struct qu_argv *v, char *name, size_t len)
{
	long i = qu_argv_find(v, "name", 0);
	if (i < 0 || !v->a[i].val)
		return -ENOENT;
	struct qu_opts o;
	if (qu_opts_parse(v->a[i].val, "guest", &o) < 0)
		return -EINVAL;
	const char *g = qu_opts_get(&o, "guest");
	int r = g && qu_libvirt_name_ok(g) && strlen(g) < len ? 0 : -EINVAL;
	if (r == 0)
		snprintf(name, len, "%s", g);
	qu_opts_free(&o);
	return r;
}

int qu_libvirt_cgroup_is(const char *text)
{
	/* cgroupfs: machine/qemu-1-NAME.libvirt-qemu; systemd: machine-qemu\x2d1\x2dNAME.scope */
	return text && (strstr(text, ".libvirt-qemu") || strstr(text, "/machine-qemu\\x2d"));
}

/* The root element of a status file, or NULL (with the document freed) when it is not
 * <domstatus>. No network, no entities, no DTD: the file is data, not a program. */
static xmlNodePtr status_root(const char *xml, size_t len, xmlDocPtr *doc)
{
	if (len > QU_LIBVIRT_STATUS_MAX)
		return NULL;
	*doc = xmlReadMemory(xml, (int)len, "status.xml", NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	xmlNodePtr root = *doc ? xmlDocGetRootElement(*doc) : NULL;
	if (!root || root->type != XML_ELEMENT_NODE || xmlStrcmp(root->name, BAD_CAST "domstatus")) {
		xmlFreeDoc(*doc);
		*doc = NULL;
		return NULL;
	}
	return root;
}

static int parse_pid(const char *s, pid_t *pid)
{
	char *end;
	errno = 0;
	long v = s ? strtol(s, &end, 10) : 0;
	if (!s || errno || end == s || *end || v <= 0 || v > INT_MAX)
		return -EBADMSG;
	*pid = (pid_t)v;
	return 0;
}

int qu_libvirt_status_parse(const char *xml, size_t len, pid_t *pid, char *monitor, size_t mlen)
{
	xmlDocPtr doc;
	xmlNodePtr root = status_root(xml, len, &doc);
	if (!root)
		return -EBADMSG;
	xmlChar *p = xmlGetProp(root, BAD_CAST "pid");
	int r = parse_pid((const char *)p, pid);
	xmlFree(p);
	if (monitor && mlen) {
		monitor[0] = '\0';
		for (xmlNodePtr c = root->children; c; c = c->next) {
			if (c->type != XML_ELEMENT_NODE || xmlStrcmp(c->name, BAD_CAST "monitor"))
				continue;
			xmlChar *m = xmlGetProp(c, BAD_CAST "path");
			if (m && strlen((const char *)m) < mlen)
				snprintf(monitor, mlen, "%s", (const char *)m);
			xmlFree(m);
			break;
		}
	}
	xmlFreeDoc(doc);
	return r;
}

/* An attribute of e, printable and bounded, into buf ("" when absent). */
static void attr_copy(xmlNodePtr e, const char *name, char *buf, size_t len)
{
	xmlChar *v = xmlGetProp(e, BAD_CAST name);
	qu_copy_printable(buf, len, v ? (const char *)v : "");
	xmlFree(v);
}

int qu_libvirt_status_facts(const char *xml, size_t len, struct qu_libvirt *lv)
{
	xmlDocPtr doc;
	xmlNodePtr root = status_root(xml, len, &doc);
	char text[16];
	lv->state[0] = lv->async_job[0] = '\0';
	lv->blockjobs = -1;
	if (!root)
		return -EBADMSG;
	attr_copy(root, "state", lv->state, sizeof(lv->state));
	for (xmlNodePtr c = root->children; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (!xmlStrcmp(c->name, BAD_CAST "job")) {
			attr_copy(c, "async", lv->async_job, sizeof(lv->async_job));
			if (!strcmp(lv->async_job, "none"))
				lv->async_job[0] = '\0';
		} else if (!xmlStrcmp(c->name, BAD_CAST "blockjobs")) {
			attr_copy(c, "active", text, sizeof(text));
			lv->blockjobs = !strcmp(text, "yes") ? 1 : !strcmp(text, "no") ? 0 : -1;
			/* Jobs libvirt tracks are listed as <blockjob> children, whatever active= says. */
			for (xmlNodePtr j = c->children; j; j = j->next)
				if (j->type == XML_ELEMENT_NODE && !xmlStrcmp(j->name, BAD_CAST "blockjob"))
					lv->blockjobs = 1;
		}
	}
	xmlFreeDoc(doc);
	return 0;
}

/* Where the root element's pid= value lies in the text, found by libxml2 itself: its SAX2
 * start-element callback gets attribute values as pointers into its copy of the input, which
 * give their byte offsets. The root element only; then the parse stops. */
struct pid_attr {
	int seen;              /* the root element was reached */
	long off, len;         /* the pid value's bytes in the input; -1 when not found there */
};

static void root_start(void *ctx, const xmlChar *name, const xmlChar *prefix, const xmlChar *uri, int nns,
		       const xmlChar **ns, int nattr, int ndefaulted, const xmlChar **attrs)
{
	xmlParserCtxtPtr ctxt = ctx;
	struct pid_attr *a = ctxt->_private;
	(void)prefix, (void)uri, (void)nns, (void)ns, (void)ndefaulted;
	if (a->seen++)
		return;
	const xmlChar *base = ctxt->input->base, *end = ctxt->input->end;
	for (int i = 0; i < nattr; i++) {
		const xmlChar *an = attrs[i * 5], *ap = attrs[i * 5 + 1], *v = attrs[i * 5 + 3], *ve = attrs[i * 5 + 4];
		if (ap || xmlStrcmp(an, BAD_CAST "pid") || !xmlStrEqual(name, BAD_CAST "domstatus"))
			continue;
		/* A value libxml2 had to rewrite (an entity in it) lives elsewhere: not found. */
		if (v >= base && ve <= end && v <= ve)
			a->off = (long)(v - base) + (long)ctxt->input->consumed, a->len = (long)(ve - v);
	}
	xmlStopParser(ctxt);
}

static int find_pid_attr(const char *xml, size_t len, struct pid_attr *a)
{
	a->seen = 0;
	a->off = a->len = -1;
	xmlSAXHandler sax;
	memset(&sax, 0, sizeof(sax));
	sax.initialized = XML_SAX2_MAGIC;
	sax.startElementNs = root_start;
	xmlParserCtxtPtr ctxt = xmlCreateMemoryParserCtxt(xml, (int)len);
	if (!ctxt)
		return -ENOMEM;
	xmlSAXHandlerPtr saved = ctxt->sax;
	ctxt->sax = &sax;
	ctxt->_private = a;
	xmlCtxtUseOptions(ctxt, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	xmlParseDocument(ctxt);
	ctxt->sax = saved;
	xmlFreeParserCtxt(ctxt);
	return a->seen && a->off >= 0 ? 0 : -EBADMSG;
}

int qu_libvirt_status_set_pid(const char *xml, size_t len, pid_t old_pid, pid_t new_pid, char **out, size_t *out_len)
{
	pid_t cur;
	struct pid_attr a;
	char old_s[16], new_s[16];
	if (qu_libvirt_status_parse(xml, len, &cur, NULL, 0) < 0 || cur != old_pid || find_pid_attr(xml, len, &a) < 0)
		return -EBADMSG;
	int ol = snprintf(old_s, sizeof(old_s), "%d", (int)old_pid), nl = snprintf(new_s, sizeof(new_s), "%d", (int)new_pid);
	/* The offsets hold only if libxml2 saw these very bytes (no other encoding): the value
	 * there must be the old PID's digits, between quotes, after "pid=". */
	size_t off = (size_t)a.off;
	if (a.len != ol || off < 5 || off + (size_t)ol >= len || memcmp(xml + off, old_s, (size_t)ol) ||
	    (xml[off - 1] != '\'' && xml[off - 1] != '"') || xml[off + ol] != xml[off - 1])
		return -EBADMSG;
	size_t n = len - (size_t)ol + (size_t)nl;
	char *t = malloc(n + 1);
	if (!t)
		return -ENOMEM;
	memcpy(t, xml, off);
	memcpy(t + off, new_s, (size_t)nl);
	memcpy(t + off + nl, xml + off + ol, len - off - (size_t)ol);
	t[n] = '\0';
	*out = t;
	*out_len = n;
	return 0;
}

/* libvirt's run directory: root's, writable by root alone, every directory above too. A
 * descriptor of it, or -errno with a message. */
static int run_dir(void)
{
	struct qu_safe_dir d;
	int r = qu_safe_open_dir(QU_LIBVIRT_RUN_DIR "/x", (uid_t)-1, 0, &d);
	if (r < 0)
		return r;
	if (!d.trusted) {
		r = qu_err(-EPERM, "%s: %s: libvirt's record there cannot be trusted", QU_LIBVIRT_RUN_DIR, d.doubt);
		qu_safe_close(&d);
		return r;
	}
	return d.fd; /* the O_PATH directory; qu_safe_close only closes it */
}

/* Opens NAME under libvirt's run directory as root's own file (a regular file, no link,
 * owned by root, writable by nobody else): the descriptor, -ENOENT, or -errno with a message. */
static int open_root_file(int dir, const char *name, struct stat *st)
{
	int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : qu_err(-errno, "%s/%s: %s", QU_LIBVIRT_RUN_DIR, name, strerror(errno));
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode) || st->st_uid != 0 || (st->st_mode & 022) || st->st_nlink != 1) {
		close(fd);
		return qu_err(-EPERM, "%s/%s is not root's own regular file (owner, mode or links): libvirt's record "
			      "cannot be trusted", QU_LIBVIRT_RUN_DIR, name);
	}
	return fd;
}

static int read_root_file(int dir, const char *name, char **text, size_t *len)
{
	struct stat st;
	int fd = open_root_file(dir, name, &st);
	if (fd < 0)
		return fd;
	if ((unsigned long long)st.st_size > QU_LIBVIRT_STATUS_MAX) {
		close(fd);
		return qu_err(-EFBIG, "%s/%s is larger than %u bytes", QU_LIBVIRT_RUN_DIR, name, QU_LIBVIRT_STATUS_MAX);
	}
	char *buf = malloc((size_t)st.st_size + 1);
	ssize_t n = buf ? qu_read_full(fd, buf, (size_t)st.st_size) : -ENOMEM;
	close(fd);
	if (n < 0) {
		free(buf);
		return qu_err((int)n, "reading %s/%s", QU_LIBVIRT_RUN_DIR, name);
	}
	buf[n] = '\0';
	*text = buf;
	*len = (size_t)n;
	return 0;
}

int qu_libvirt_detect(pid_t pid, const struct qu_argv *argv, const char *cgroup_text, struct qu_libvirt *lv)
{
	char name[QU_LIBVIRT_NAME_MAX + 1], file[QU_LIBVIRT_NAME_MAX + 8], *xml = NULL;
	size_t len;
	pid_t recorded;
	memset(lv, 0, sizeof(*lv));
	if (qu_libvirt_name_from_argv(argv, name, sizeof(name)) < 0)
		return 0;
	snprintf(file, sizeof(file), "%s.xml", name);
	int dir = open(QU_LIBVIRT_RUN_DIR, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return 0; /* no libvirt here */
	close(dir);
	if ((dir = run_dir()) < 0)
		return dir;
	int r = read_root_file(dir, file, &xml, &len);
	if (r == -ENOENT) {
		/* A VM with libvirt's cgroup but no status file: libvirt lost it, or it is someone
		 * else's VM named like one. Either way nothing of libvirt's is to be kept true. */
		r = 0;
		goto out;
	}
	if (r < 0)
		goto out;
	if (qu_libvirt_status_parse(xml, len, &recorded, lv->monitor, sizeof(lv->monitor)) < 0) {
		r = qu_err(-EBADMSG, "%s/%s: no <domstatus pid='N'> in it: refused (libvirt would lose the VM)",
			   QU_LIBVIRT_RUN_DIR, file);
		goto out;
	}
	int monitor_is = !strncmp(lv->monitor, "/var/lib/libvirt/qemu/domain-", 29);
	if (!monitor_is && !qu_libvirt_cgroup_is(cgroup_text)) {
		r = 0; /* a status file of that name, but neither the monitor nor the cgroup is libvirt's */
		goto out;
	}
	if (recorded != pid && !qu_libvirt_cgroup_is(cgroup_text)) {
		r = 0; /* a VM of someone else's that has a libvirt domain's name */
		goto out;
	}
	if (recorded != pid) {
		r = qu_err(-ESRCH, "%s/%s names PID %d, not %d: this QEMU is not the domain libvirt runs as %s: "
			   "refused (libvirt would lose track of it)", QU_LIBVIRT_RUN_DIR, file, (int)recorded, (int)pid, name);
		goto out;
	}
	lv->is = 1;
	qu_libvirt_status_facts(xml, len, lv);
	snprintf(lv->name, sizeof(lv->name), "%s", name);
	snprintf(lv->status, sizeof(lv->status), "%s/%s", QU_LIBVIRT_RUN_DIR, file);
	snprintf(file, sizeof(file), "%s.pid", name);
	struct stat st;
	int pf = open_root_file(dir, file, &st);
	if (pf >= 0) {
		close(pf);
		snprintf(lv->pidfile, sizeof(lv->pidfile), "%s/%s", QU_LIBVIRT_RUN_DIR, file);
	}
	r = 1;
out:
	free(xml);
	close(dir);
	return r;
}

/* A rename lasts once the directory is on disk (dir is O_PATH: open it to sync it). */
static void sync_dir(int dir)
{
	int dfd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
}

/* Replaces dir/name with text: a temporary file in the same directory (O_EXCL, no link
 * followed), the old file's owner and mode, fsync, rename over, fsync of the directory. */
static int replace_file(int dir, const char *name, const struct stat *st, const char *text, size_t len)
{
	char tmp[QU_LIBVIRT_NAME_MAX + 40];
	snprintf(tmp, sizeof(tmp), ".%s.qemu-upgrade.%d", name, (int)getpid());
	int fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return qu_err(-errno, "%s/%s: %s", QU_LIBVIRT_RUN_DIR, tmp, strerror(errno));
	int r = qu_write_full(fd, text, len);
	if (r == 0 && (fchown(fd, st->st_uid, st->st_gid) < 0 || fchmod(fd, st->st_mode & 07777) < 0 || fsync(fd) < 0))
		r = -errno;
	close(fd);
	if (r == 0 && renameat(dir, tmp, dir, name) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dir, tmp, 0);
		return qu_err(r, "rewriting %s/%s: %s", QU_LIBVIRT_RUN_DIR, name, strerror(-r));
	}
	sync_dir(dir);
	return 0;
}

static int rewrite_status(int dir, const char *name, pid_t old_pid, pid_t new_pid)
{
	struct stat st;
	char *xml = NULL, *out = NULL;
	size_t len, out_len;
	int r = read_root_file(dir, name, &xml, &len);
	if (r < 0)
		return r == -ENOENT ? qu_err(r, "%s/%s is gone", QU_LIBVIRT_RUN_DIR, name) : r;
	int fd = open_root_file(dir, name, &st);
	if (fd < 0) {
		free(xml);
		return fd;
	}
	close(fd);
	r = qu_libvirt_status_set_pid(xml, len, old_pid, new_pid, &out, &out_len);
	if (r < 0)
		r = qu_err(r, "%s/%s no longer says <domstatus pid='%d'>", QU_LIBVIRT_RUN_DIR, name, (int)old_pid);
	else
		r = replace_file(dir, name, &st, out, out_len);
	free(xml);
	free(out);
	return r;
}

/* libvirt's PID file holds the number alone (and a newline, or not): it is rewritten only when
 * it names the old PID. */
static int rewrite_pidfile(int dir, const char *name, pid_t old_pid, pid_t new_pid)
{
	struct stat st;
	char buf[32] = "", want[16], text[24];
	int fd = open_root_file(dir, name, &st);
	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	ssize_t n = qu_read_full(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	snprintf(want, sizeof(want), "%d", (int)old_pid);
	if (strcmp(buf, want))
		return 0;
	int tl = snprintf(text, sizeof(text), "%d", (int)new_pid);
	return replace_file(dir, name, &st, text, (size_t)tl);
}

/* The new QEMU's PID file, locked by it (qu_libvirt_pidfile_prepare), named NAME.pid plus
 * this while the upgrade may still roll back. */
#define PIDFILE_SPARE ".pid.qemu-upgrade-new"

int qu_libvirt_pidfile_prepare(const struct qu_libvirt *lv)
{
	char file[QU_LIBVIRT_NAME_MAX + 8], spare[QU_LIBVIRT_NAME_MAX + 32];
	struct stat st;
	if (!lv->is || !lv->pidfile[0] || !qu_libvirt_name_ok(lv->name))
		return -ENOENT;
	int dir = run_dir();
	if (dir < 0)
		return dir;
	snprintf(file, sizeof(file), "%s.pid", lv->name);
	snprintf(spare, sizeof(spare), "%s" PIDFILE_SPARE, lv->name);
	int fd = open_root_file(dir, file, &st);
	if (fd >= 0) {
		close(fd);
		/* A spare of an upgrade that died: its QEMU is gone or never committed. */
		unlinkat(dir, spare, 0);
		fd = openat(dir, spare, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			fd = qu_err(-errno, "%s/%s: %s", QU_LIBVIRT_RUN_DIR, spare, strerror(errno));
		else if (fchown(fd, st.st_uid, st.st_gid) < 0 || fchmod(fd, st.st_mode & 07777) < 0) {
			int e = errno;
			close(fd);
			unlinkat(dir, spare, 0);
			fd = qu_err(-e, "%s/%s: %s", QU_LIBVIRT_RUN_DIR, spare, strerror(e));
		}
	}
	close(dir);
	return fd;
}

/* After the commit: the spare whose lock new_pid holds gets the new PID and replaces NAME.pid,
 * so that the file names the new QEMU and is locked by it, as libvirt left it for the old one.
 * 1 done, 0 no spare of new_pid's (any other goes), or -errno with a message. */
static int adopt_spare(int dir, const char *name, pid_t new_pid)
{
	char file[QU_LIBVIRT_NAME_MAX + 8], spare[QU_LIBVIRT_NAME_MAX + 32], text[16];
	struct stat st;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
	snprintf(file, sizeof(file), "%s.pid", name);
	snprintf(spare, sizeof(spare), "%s" PIDFILE_SPARE, name);
	int fd = openat(dir, spare, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : qu_err(-errno, "%s/%s: %s", QU_LIBVIRT_RUN_DIR, spare, strerror(errno));
	int ours = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == 0 && !(st.st_mode & 022) &&
		   st.st_nlink == 1 && fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK && fl.l_pid == new_pid;
	if (!ours) {
		close(fd);
		unlinkat(dir, spare, 0);
		return 0;
	}
	/* Our descriptor is another process's: closing it leaves the new QEMU's lock alone. */
	int tl = snprintf(text, sizeof(text), "%d", (int)new_pid), r = 0;
	if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t)tl, 0) != tl || fsync(fd) < 0)
		r = errno ? -errno : -EIO;
	close(fd);
	if (r == 0 && renameat(dir, spare, dir, file) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dir, spare, 0);
		return qu_err(r, "%s/%s: %s", QU_LIBVIRT_RUN_DIR, file, strerror(-r));
	}
	sync_dir(dir);
	return 1;
}

/* A rollback: the spare goes with the new QEMU. */
static void drop_spare(const char *name)
{
	char spare[QU_LIBVIRT_NAME_MAX + 32];
	int dir = run_dir();
	if (dir < 0)
		return;
	snprintf(spare, sizeof(spare), "%s" PIDFILE_SPARE, name);
	unlinkat(dir, spare, 0);
	close(dir);
}

int qu_libvirt_rewrite(const struct qu_libvirt *lv, pid_t old_pid, pid_t new_pid)
{
	char file[QU_LIBVIRT_NAME_MAX + 8];
	if (!lv->is || !qu_libvirt_name_ok(lv->name))
		return qu_err(-EINVAL, "not a libvirt domain");
	int dir = run_dir();
	if (dir < 0)
		return dir;
	snprintf(file, sizeof(file), "%s.xml", lv->name);
	int r = rewrite_status(dir, file, old_pid, new_pid);
	if (r == 0)
		r = adopt_spare(dir, lv->name, new_pid);
	if (r == 0) {
		snprintf(file, sizeof(file), "%s.pid", lv->name);
		r = rewrite_pidfile(dir, file, old_pid, new_pid);
	}
	r = r > 0 ? 0 : r;
	close(dir);
	return r;
}

int qu_libvirt_recorded_pid(const struct qu_libvirt *lv, pid_t *pid)
{
	char file[QU_LIBVIRT_NAME_MAX + 8], *xml = NULL;
	size_t len;
	if (!qu_libvirt_name_ok(lv->name))
		return qu_err(-EINVAL, "not a libvirt domain");
	int dir = run_dir();
	if (dir < 0)
		return dir;
	snprintf(file, sizeof(file), "%s.xml", lv->name);
	int r = read_root_file(dir, file, &xml, &len);
	close(dir);
	if (r == 0 && qu_libvirt_status_parse(xml, len, pid, NULL, 0) < 0)
		r = qu_err(-EBADMSG, "%s/%s: no <domstatus pid='N'> in it", QU_LIBVIRT_RUN_DIR, file);
	else if (r == -ENOENT)
		r = qu_err(r, "%s/%s is gone", QU_LIBVIRT_RUN_DIR, file);
	free(xml);
	return r;
}

int qu_libvirt_record(const struct qu_libvirt *lv, pid_t old_pid)
{
	char path[512], text[QU_LIBVIRT_NAME_MAX + 16] = "";
	if (qu_kv_add(text, sizeof(text), "name", lv->name) < 0)
		return qu_err(-EINVAL, "libvirt domain name %s cannot be recorded", lv->name);
	if (mkdir(qu_state_dir(), 0700) < 0 && errno != EEXIST)
		return qu_err(-errno, "%s: %s", qu_state_dir(), strerror(errno));
	qu_state_path(old_pid, "libvirt", path, sizeof(path));
	int r = qu_write_file_atomic(path, text, strlen(text));
	if (r < 0)
		return qu_err(r, "recording libvirt domain %s in %s: %s", lv->name, path, strerror(-r));
	return 0;
}

int qu_libvirt_settle(pid_t old_pid, pid_t new_pid, int committed)
{
	char path[512], text[QU_LIBVIRT_NAME_MAX + 16];
	struct stat st;
	struct qu_libvirt lv = { .is = 1 };
	qu_state_path(old_pid, "libvirt", path, sizeof(path));
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : qu_err(-errno, "%s: %s", path, strerror(errno));
	ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() ?
			    qu_read_full(fd, text, sizeof(text) - 1) : -EPERM;
	close(fd);
	if (n < 0)
		return qu_err((int)n, "%s: not our record", path);
	text[n] = '\0';
	int named = qu_kv_get(text, "name", lv.name, sizeof(lv.name)) == 0 && qu_libvirt_name_ok(lv.name);
	if (!committed || new_pid <= 0) {
		if (named)
			drop_spare(lv.name);
		unlink(path);
		return 0;
	}
	if (!named)
		return qu_err(-EBADMSG, "%s: damaged", path);
	snprintf(lv.status, sizeof(lv.status), "%s/%s.xml", QU_LIBVIRT_RUN_DIR, lv.name);
	int r = qu_libvirt_rewrite(&lv, old_pid, new_pid);
	if (r < 0)
		return r;
	unlink(path);
	qu_info("libvirt domain %s: pid='%d' in %s", lv.name, (int)new_pid, lv.status);
	return 1;
}
