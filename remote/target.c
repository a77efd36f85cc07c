#include "remote/target.h"
#include "upgrade/fdpass/carried.h"
#include "qemu-integration/binary.h"
#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "qemu-integration/ramblocks.h"
#include "remote/announce.h"
#include "remote/blk/chain.h"
#include "remote/blk/nbd.h"
#include "remote/blk/verify.h"
#include "remote/recreate.h"
#include "remote/standby/images.h"
#include "remote/standby/wiring.h"
#include "remote/stderr-log.h"
#include "remote/tls.h"
#include "upgrade/clock.h"
#include "upgrade/context.h"
#include "upgrade/fault.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/io.h"
#include "upgrade/statedir.h"
#include "upgrade/kv.h"
#include "upgrade/launcher.h"
#include "upgrade/memory.h"
#include "upgrade/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define TARGET_MAX_WORDS 4096
#define TARGET_MAX_FDS 64
#define TARGET_MAX_DISKS 16
#define TARGET_MAX_CHECKED 32

struct target_disk {
	char path[PATH_MAX];
	char format[16];
	unsigned long long size;
	char device[64];
	/* --copy-storage-inc: a new top over the same backing chain as the old host's. */
	char backing[PATH_MAX];        /* as written in the top's header */
	char backing_format[16];
	char base[PATH_MAX];           /* backing, resolved: the file checked (op=chain) */
	char base_sum[QU_DIGEST_HEX];  /* its sum on the old host */
};

/* A backing file this session described (op=chain), and as whom. */
struct checked_file {
	char path[PATH_MAX];
	uid_t uid;
	struct qu_file_fact f;
};

struct qu_target {
	char *argv[TARGET_MAX_WORDS + 1], *envp[TARGET_MAX_WORDS + 1];
	size_t nargv, nenvp;
	char *cwd, *context;
	struct qu_carried fds[TARGET_MAX_FDS]; /* as the tool described them: no descriptor crosses */
	size_t nfds;
	struct target_disk disks[TARGET_MAX_DISKS];
	size_t ndisks;
	struct checked_file checked[TARGET_MAX_CHECKED];
	size_t nchecked;
	/* What this session made (files removed if not resumed, the new QEMU, whether it was
	 * resumed), kept on disk for the listener in case this process dies. */
	struct qu_session_record record;
	pid_t pid;
	int pidfd;
	int stderr_rd;
	struct qu_stderr_log stderr_log; /* a COLO secondary's stderr, read at every heartbeat */
	struct qu_qmp *ctl;
	int no_tls;                 /* the tool asked for plain TCP (--no-tls) */
	int have_psk;               /* psk holds the key for QEMU's TLS */
	struct qu_psk psk;
	unsigned long long booking; /* this host's memory ledger: the copy's room, while we run */
	unsigned colo_timeout_ms;   /* standby: a COLO secondary, taking over after this much silence */
	int colo_armed;             /* the supervisor's first heartbeat came: COLO runs, silence counts */
	int colo_exited;            /* the secondary's COLO thread ended: its COLO_EXIT was read */
	struct qu_colo_images colo_images; /* standby with a disk: the secondary's scratch layers */
	struct qu_tls tls;
};

/* The VM's user, from the context (root when none came): what is made for the VM is made as
 * that user, only where that user may make it (upgrade/fdpass/asuser.h). */
static void vm_ident(const struct qu_target *t, struct qu_ident *who)
{
	struct qu_context *c = calloc(1, sizeof(*c));
	memset(who, 0, sizeof(*who));
	who->umask = 077;
	if (c && t->context && qu_context_decode(t->context, c) == 0)
		qu_ident_of(c, who);
	free(c);
}

struct qu_target *qu_target_new(void)
{
	struct qu_target *t = calloc(1, sizeof(*t));
	if (t) {
		t->pidfd = -1;
		t->stderr_rd = -1;
	}
	return t;
}

static void forget_launch(struct qu_target *t)
{
	for (size_t i = 0; i < t->nargv; i++)
		free(t->argv[i]);
	for (size_t i = 0; i < t->nenvp; i++)
		free(t->envp[i]);
	free(t->cwd);
	free(t->context);
	t->nargv = t->nenvp = t->nfds = t->ndisks = 0;
	t->cwd = t->context = NULL;
}

void qu_target_forget(struct qu_target *t)
{
	if (t->pid <= 0)
		forget_launch(t);
}

/* The path the agent would open for a log (recreate.c: anything else becomes /dev/null). */
static int log_path(const char *spec, char *path, size_t len)
{
	qu_kv_get(spec, "path", path, len);
	return path[0] == '/' && strncmp(path, "/dev/", 5) && strncmp(path, "/proc/", 6);
}

void qu_target_check(const struct qu_target *t, const struct qu_policy *p, struct qu_refusals *out)
{
	char path[PATH_MAX];
	struct qu_context *c = calloc(1, sizeof(*c));
	if (!c) {
		qu_refusals_add(out, "out of memory");
		return;
	}
	if (t->nargv == 0)
		qu_refusals_add(out, "no command line to start");
	else
		qu_policy_binary(p, t->argv[0], 1, out);
	/* No context: the launcher would keep the agent's own identity, root's. */
	if (t->context && qu_context_decode(t->context, c) < 0)
		qu_refusals_add(out, "the process context cannot be read, so its identity cannot be checked");
	else
		qu_policy_identity(p, c, out);
	free(c);
	for (size_t i = 0; i < t->ndisks; i++)
		qu_policy_path(p, t->disks[i].path, "disk image", 1, out);
	for (size_t i = 0; i < t->nfds; i++) {
		const struct qu_carried *f = &t->fds[i];
		if (f->kind == QU_FD_LISTENER) {
			qu_kv_get(f->spec, "path", path, sizeof(path));
			qu_policy_path(p, path, "listening socket", 1, out);
		} else if (f->kind == QU_FD_STDIO && log_path(f->spec, path, sizeof(path))) {
			qu_policy_path(p, path, "log file", 0, out);
		}
	}
	if (t->nargv)
		qu_policy_argv(p, t->argv, t->nargv, out);
	/* The reasons quote what the tool sent: no control character reaches a log line or the
	 * answer's key=value lines. */
	for (unsigned i = 0; i < out->n; i++)
		for (char *ch = out->why[i]; *ch; ch++)
			if ((unsigned char)*ch < 0x20 || *ch == 0x7f)
				*ch = '?';
}

void qu_target_free(struct qu_target *t)
{
	if (!t)
		return;
	qu_qmp_close(t->ctl);
	if (!t->record.resumed && t->pid > 0) {
		/* Our child (the launcher made us its subreaper), so its PID cannot be reused
		 * before we reap it. One that ended by itself says how, and what it wrote last: a
		 * secondary that died beside its primary is otherwise a mystery. */
		int status = 0;
		if (waitpid(t->pid, &status, WNOHANG) == t->pid) {
			char how[64];
			qu_stderr_log_drain(&t->stderr_log, t->stderr_rd, t->pid);
			qu_stderr_log_flush(&t->stderr_log, t->pid);
			qu_describe_status(status, how, sizeof(how));
			qu_info("agent: new QEMU %d had ended by itself (%s), not resumed", (int)t->pid, how);
		} else {
			if (t->pidfd < 0 || qu_pidfd_kill(t->pidfd, SIGKILL) < 0)
				kill(t->pid, SIGKILL);
			waitpid(t->pid, NULL, 0);
			qu_info("agent: new QEMU %d stopped (not resumed)", (int)t->pid);
		}
	}
	if (!t->record.resumed)
		qu_session_record_remove_files(&t->record, &t->record.who);
	if (t->record.ctl[0])
		unlink(t->record.ctl);
	qu_session_record_remove();
	if (t->booking)
		qu_memory_unbook(t->booking);
	/* The key is of no use once the session ends, whatever became of the guest. */
	qu_tls_remove(NULL, &t->tls, 0);
	explicit_bzero(&t->psk, sizeof(t->psk));
	qu_close(&t->pidfd);
	qu_close(&t->stderr_rd);
	qu_colo_images_close(&t->colo_images);
	forget_launch(t);
	free(t);
}

int qu_target_add(struct qu_target *t, struct qu_rec *rec)
{
	char **slot = NULL;
	switch (rec->type) {
	case QU_REC_ARG:
		if (t->nargv == TARGET_MAX_WORDS)
			return -E2BIG;
		slot = &t->argv[t->nargv++];
		break;
	case QU_REC_ENV:
		if (t->nenvp == TARGET_MAX_WORDS)
			return -E2BIG;
		slot = &t->envp[t->nenvp++];
		break;
	case QU_REC_CWD:
		free(t->cwd);
		slot = &t->cwd;
		break;
	case QU_REC_CONTEXT:
		free(t->context);
		slot = &t->context;
		break;
	case QU_REC_FD: {
		/* Nothing but specs cross hosts. */
		if (rec->fd >= 0 || t->nfds == TARGET_MAX_FDS || qu_get_u32(rec->payload) >= 259)
			return -EINVAL;
		struct qu_carried *f = &t->fds[t->nfds++];
		*f = (struct qu_carried){ .old_fd = -1 };
		f->target = (int)qu_get_u32(rec->payload);
		f->kind = qu_get_u32(rec->payload + 4);
		snprintf(f->name, sizeof(f->name), "%s", (const char *)rec->payload + 8);
		snprintf(f->spec, sizeof(f->spec), "%s", qu_rec_fd_spec(rec));
		return 0;
	}
	default:
		return -EBADMSG;
	}
	*slot = (char *)rec->payload;
	rec->payload = NULL;
	return 0;
}

int qu_target_probe(struct qu_target *t, const char *call, uint64_t deadline_us, char *reply, size_t len)
{
	char path[PATH_MAX], machine[128];
	struct qu_binary *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	qu_kv_get(call, "binary", path, sizeof(path));
	qu_kv_get(call, "machine", machine, sizeof(machine));
	/* As nobody, with a fixed environment: what the peer sent is for the new QEMU alone. */
	int r = qu_binary_probe(path, (uid_t)-1, QU_NOBODY, QU_NOBODY, deadline_us, b), has = 0;
	if (r == 0 && machine[0] && (has = qu_binary_has_machine(b, machine, deadline_us)) < 0)
		r = qu_err(has, "%s: `-machine help` failed", path);
	if (r == 0) {
		char ver[48];
		snprintf(ver, sizeof(ver), "%d.%d.%d", b->ver[0], b->ver[1], b->ver[2]);
		reply[0] = '\0';
		qu_kv_add(reply, len, "version", ver);
		qu_kv_add(reply, len, "version_line", b->version_line);
		qu_kv_addf(reply, len, "machine", "%d", has);
		/* What this host could give a copy of the guest. */
		char *mi = NULL;
		if (qu_read_file("/proc/meminfo", &mi, NULL) == 0) {
			char *m = strstr(mi, "MemAvailable:");
			if (m)
				qu_kv_addf(reply, len, "mem_available", "%llu", strtoull(m + 13, NULL, 10) * 1024ull);
			free(mi);
		}
	}
	free(b);
	/* An older tool sent the VM's environment before a probe: never used, the launch brings
	 * its own. */
	for (size_t i = 0; i < t->nenvp; i++)
		free(t->envp[i]);
	t->nenvp = 0;
	return r;
}

int qu_target_tls(struct qu_target *t, const char *call, const struct qu_psk *derived)
{
	char hex[QU_PSK_HEX_LEN + 1];
	t->no_tls = qu_kv_num(call, "on", 1) == 0;
	if (derived) {
		t->psk = *derived;
		t->have_psk = 1;
	} else if (qu_kv_get(call, "psk", hex, sizeof(hex)) == 0) {
		int r = qu_psk_parse(hex, &t->psk);
		explicit_bzero(hex, sizeof(hex));
		if (r < 0)
			return qu_err(r, "the TLS key the tool sent is not %d hex digits", 2 * QU_PSK_LEN);
		t->have_psk = 1;
	}
	return 0;
}

int qu_target_disk(struct qu_target *t, const char *call)
{
	if (t->ndisks == TARGET_MAX_DISKS)
		return qu_err(-E2BIG, "more than %d disks to copy", TARGET_MAX_DISKS);
	struct target_disk *d = &t->disks[t->ndisks];
	qu_kv_get(call, "path", d->path, sizeof(d->path));
	qu_kv_get(call, "format", d->format, sizeof(d->format));
	qu_kv_get(call, "device", d->device, sizeof(d->device));
	long long size = qu_kv_num(call, "size", -1);
	if (d->path[0] != '/' || !d->format[0] || !d->device[0] || size <= 0 || strspn(d->format, "abcdefghijklmnopqrstuvwxyz0123456789") != strlen(d->format))
		return qu_err(-EINVAL, "disk request without an absolute path, format, device and size");
	d->size = (unsigned long long)size;
	qu_kv_get(call, "backing", d->backing, sizeof(d->backing));
	qu_kv_get(call, "backing_format", d->backing_format, sizeof(d->backing_format));
	qu_kv_get(call, "base", d->base, sizeof(d->base));
	qu_kv_get(call, "base_sum", d->base_sum, sizeof(d->base_sum));
	if (d->backing[0] && (!d->base[0] || !d->base_sum[0] || strspn(d->backing_format, "abcdefghijklmnopqrstuvwxyz0123456789") != strlen(d->backing_format) || !d->backing_format[0]))
		return qu_err(-EINVAL, "disk request with a backing file but without its format, path or sum");
	t->ndisks++;
	return 0;
}

/* CALL op=chain path= uid= gid=: this host's facts about a backing file, read as that user.
 * Answered in a REPLY either way (error= when it cannot be read): a difference is the tool's
 * to report, with every other one, and ends nothing here. */
int qu_target_chain(struct qu_target *t, const char *call, char *reply, size_t len)
{
	char path[PATH_MAX];
	struct qu_ident who = { .umask = 077 };
	long long uid = qu_kv_num(call, "uid", -1), gid = qu_kv_num(call, "gid", -1);
	if (qu_kv_get(call, "path", path, sizeof(path)) < 0 || path[0] != '/' || uid < 0 || gid < 0 ||
	    uid > 0xfffffffe || gid > 0xfffffffe)
		return qu_err(-EINVAL, "chain request without an absolute path, uid and gid");
	who.uid = (uid_t)uid;
	who.gid = (gid_t)gid;
	struct qu_file_fact f;
	reply[0] = '\0';
	if (qu_chain_fact(&who, path, &f) < 0) {
		qu_kv_add(reply, len, "error", qu_err_msg());
		return 0;
	}
	qu_chain_fact_put(&f, reply, len);
	if (t->nchecked < TARGET_MAX_CHECKED) {
		struct checked_file *c = &t->checked[t->nchecked++];
		snprintf(c->path, sizeof(c->path), "%s", path);
		c->uid = who.uid;
		c->f = f;
	}
	return 0;
}

/* A new top's backing chain: its backing file must be the file this session checked for the
 * VM's user, and found as the old host has it. */
__attribute__((noinline)) static int chain_checked(const struct qu_target *t, const struct target_disk *d)
{
	char joined[2 * PATH_MAX];
	const char *slash = strrchr(d->path, '/');
	if (d->backing[0] == '/')
		snprintf(joined, sizeof(joined), "%s", d->backing);
	else
		snprintf(joined, sizeof(joined), "%.*s/%s", (int)(slash - d->path), d->path, d->backing);
	if (strcmp(joined, d->base))
		return qu_err(-EINVAL, "%s: backing file '%s' is not %s", d->path, d->backing, d->base);
	for (size_t i = 0; i < t->nchecked; i++) {
		const struct checked_file *c = &t->checked[i];
		struct qu_file_fact now;
		if (strcmp(c->path, d->base) || c->uid != t->record.who.uid)
			continue;
		if (strcmp(c->f.sum, d->base_sum))
			return qu_err(-EINVAL, "backing file %s differs on this host: not making %s over it", d->base, d->path);
		/* Since the check (the plan, moments ago): the same file, unchanged. */
		int r = qu_chain_stat(&t->record.who, d->base, &now);
		if (r < 0)
			return r;
		if (now.dev != c->f.dev || now.ino != c->f.ino || now.size != c->f.size || now.mtime_ns != c->f.mtime_ns)
			return qu_err(-ESTALE, "backing file %s changed on this host since it was checked: not making %s over it",
				      d->base, d->path);
		return 0;
	}
	return qu_err(-EINVAL, "backing file %s of %s was not checked on this host: not making a top over it",
		      d->base, d->path);
}

int qu_target_verify(struct qu_target *t, const char *call, uint64_t deadline_us, char *reply, size_t len)
{
	char device[64], hex[QU_DIGEST_HEX];
	qu_kv_get(call, "device", device, sizeof(device));
	for (size_t i = 0; i < t->ndisks; i++) {
		const struct target_disk *d = &t->disks[i];
		if (strcmp(d->device, device))
			continue;
		int r = qu_verify_sum(&t->record.who, d->path, d->format, NULL, 0, qu_kv_num(call, "top", 0) == 1,
				      deadline_us, hex);
		reply[0] = '\0';
		if (r < 0)
			qu_kv_add(reply, len, "error", qu_err_msg());
		else
			qu_kv_add(reply, len, "sum", hex);
		return 0;
	}
	return qu_err(-ENOENT, "no copied disk '%s' here", device);
}

static int ctl_listen(struct qu_target *t)
{
	if (mkdir(qu_state_dir(), 0700) < 0 && errno != EEXIST)
		return qu_err(-errno, "cannot create %s: %s", qu_state_dir(), strerror(errno));
	snprintf(t->record.ctl, sizeof(t->record.ctl), "%s/agent-%d.ctl", qu_state_dir(), (int)getpid());
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", t->record.ctl);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(t->record.ctl);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 2) < 0) {
		int e = errno;
		close(fd);
		return qu_err(-e, "cannot listen on %s: %s", t->record.ctl, strerror(e));
	}
	return fd;
}

/* What the new QEMU printed before it died, appended to the current error. */
static void add_stderr(struct qu_target *t)
{
	qu_err_append_output(t->stderr_rd, "the new QEMU");
}

/* The port QEMU bound for `migrate-incoming tcp:HOST:0` (query-migrate's socket-address). */
static int incoming_port(struct qu_qmp *q, uint64_t deadline_us)
{
	json_object *mig = NULL, *sa, *e, *port;
	int r = qu_qmp_execute(q, "query-migrate", NULL, -1, deadline_us, &mig), p = -ENOENT;
	if (r < 0)
		return r;
	if (json_object_object_get_ex(mig, "socket-address", &sa) && json_object_is_type(sa, json_type_array) &&
	    json_object_array_length(sa) > 0 && (e = json_object_array_get_idx(sa, 0)) &&
	    json_object_object_get_ex(e, "port", &port) && json_object_get_string(port))
		p = atoi(json_object_get_string(port));
	json_object_put(mig);
	return p > 0 ? p : -ENOENT;
}

/* A file of the agent's own (the TLS key), in the session's record before it is made. */
static void record_own_file(const char *path, void *record)
{
	qu_session_record_add_file(record, path, 1);
}

static int start_incoming(struct qu_target *t, const char *host, uint64_t deadline_us, char *uri, size_t len)
{
	struct qu_mig_settings want = { .events = 1 };
	if (!t->no_tls) {
		if (!t->have_psk)
			return qu_err(-EPROTO, "TLS asked for without a key (the tool sends one with op=tls; "
				      "--no-tls for plain TCP)");
		/* The key file is read at each handshake: it stays until the resume. */
		int r = qu_tls_add(t->ctl, &t->psk, "server", t->record.who.uid, t->record.who.gid, record_own_file,
				   &t->record, deadline_us, &t->tls);
		if (r < 0)
			return r;
		want.tls_set = 1;
		snprintf(want.tls_creds, sizeof(want.tls_creds), "%s", QU_TLS_ID);
	}
	char any[96];
	snprintf(any, sizeof(any), "tcp:%s:0", host);
	int r = qu_mig_incoming(t->ctl, &want, any, deadline_us);
	if (r < 0)
		return r;
	int port = incoming_port(t->ctl, deadline_us);
	if (port < 0)
		return qu_err(port, "the new QEMU does not say which port it listens on for the migration");
	snprintf(uri, len, "tcp:%s:%d", host, port);
	return 0;
}

/* The new QEMU's RAM blocks (firmware and ROMs among them), for the tool to compare with the
 * old QEMU's before it pauses it. Left out when they cannot be read or do not fit: the tool
 * then relies on the load. */
__attribute__((noinline)) static void add_ramblocks(struct qu_target *t, uint64_t deadline_us, char *reply, size_t len)
{
	struct qu_ramblock *b = calloc(QU_MAX_RAMBLOCKS, sizeof(*b));
	char *text = malloc(len);
	int n = b && text ? qu_ramblocks_query(t->ctl, deadline_us, b, QU_MAX_RAMBLOCKS) : -ENOMEM;
	if (n > 0 && qu_ramblocks_pack(b, (size_t)n, text, len) == 0)
		qu_kv_add(reply, len, "ramblocks", text);
	free(text);
	free(b);
}

/* Moves into this host side by side must not overcommit it: the guest's RAM (and a margin
 * for the new QEMU) is booked in the same ledger local copies use, for as long as this
 * session runs; the plan checked MemAvailable alone. */
static int book_memory(struct qu_target *t)
{
	long long need = 256LL << 20;
	for (size_t i = 0; i < t->nfds; i++)
		if (t->fds[i].kind == QU_FD_RAM)
			need += qu_kv_num(t->fds[i].spec, "size", 0);
	struct qu_context *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	if (t->context)
		qu_context_decode(t->context, ctx);
	ctx->ncgroups = 0; /* this host's room, not the source's cgroups */
	int r = qu_memory_book(need, ctx, &t->booking);
	free(ctx);
	return r < 0 ? qu_err_wrap(r, "this host's memory") : 0;
}

/* standby with a disk: the secondary's active and hidden images, made here and given to
 * QEMU at the numbers the tool's command line names (remote/standby/images.h). */
static int add_colo_images(struct qu_target *t, uint64_t deadline_us, struct qu_launch_fd *fds, int *made, size_t *n)
{
	struct qu_colo_images *ci = &t->colo_images;
	if (!ci->asked)
		return 0;
	for (size_t i = 0; i < *n; i++)
		if (qu_colo_images_uses(ci, fds[i].target))
			return qu_err(-EINVAL, "standby: the secondary's image descriptor %d is taken by %s", fds[i].target,
				      fds[i].name);
	int r = qu_colo_images_make(ci, &t->record.who, deadline_us);
	if (r < 0)
		return r;
	static const char *const what[QU_COLO_IMAGES] = { "COLO active image", "COLO hidden image" };
	for (int i = 0; i < QU_COLO_IMAGES; i++) {
		made[*n] = ci->fd[i];
		ci->fd[i] = -1; /* closed with the other launch descriptors */
		fds[(*n)++] = (struct qu_launch_fd){ made[*n - 1], ci->target[i], QU_FD_STDIO, what[i], NULL };
	}
	return 0;
}

int qu_target_colo_disk(struct qu_target *t, const char *call)
{
	if (t->pid > 0)
		return qu_err(-EINVAL, "standby: the secondary's images come before its start");
	return qu_colo_images_ask(&t->colo_images, call);
}

int qu_target_start(struct qu_target *t, const char *host, uint64_t deadline_us, char *reply, size_t len)
{
	struct qu_launch_fd fds[TARGET_MAX_FDS + 3 + QU_COLO_IMAGES];
	int made[TARGET_MAX_FDS + 3 + QU_COLO_IMAGES], r = 0, have_stderr = 0, errpipe[2] = { -1, -1 };
	size_t n = 0;

	if (t->nargv == 0 || t->pid > 0)
		return qu_err(-EINVAL, "nothing to start, or started already");
	t->argv[t->nargv] = NULL;
	t->envp[t->nenvp] = NULL;
	/* Whatever the tool sent, the new QEMU must wait paused for the migration: one that ran
	 * the guest on its own would be a second copy of it. */
	int paused = 0, incoming = 0;
	for (size_t i = 1; i < t->nargv; i++) {
		paused |= !strcmp(t->argv[i], "-S");
		incoming |= !strcmp(t->argv[i], "-incoming") && i + 1 < t->nargv && !strcmp(t->argv[i + 1], "defer");
	}
	if (!paused || !incoming)
		return qu_err(-EINVAL, "the command line lacks -S or -incoming defer: not starting it");
	/* What is made for the VM is made, and removed, as the user the context names. */
	vm_ident(t, &t->record.who);
	if ((r = book_memory(t)) < 0)
		return r;
	for (size_t i = 0; i < t->ndisks; i++)
		if (t->disks[i].backing[0] && (r = chain_checked(t, &t->disks[i])) < 0)
			return r;
	for (size_t i = 0; i < t->ndisks; i++)
		if ((r = qu_recreate_image(&t->record.who, &t->record, t->disks[i].path, t->disks[i].format,
					   t->disks[i].size, t->disks[i].backing[0] ? t->disks[i].backing : NULL,
					   t->disks[i].backing_format, deadline_us)) < 0)
			return r;
	int ctl = ctl_listen(t);
	if (ctl < 0)
		return ctl;
	qu_session_record_write(&t->record);
	made[n] = ctl;
	fds[n++] = (struct qu_launch_fd){ ctl, QU_FD_CTL, QU_FD_CONTROL, "private monitor", NULL };
	/* Only a binary root installed, and exactly the file checked: by descriptor. */
	int prog = qu_binary_open(t->argv[0], (uid_t)-1, NULL, NULL, NULL);
	if (prog < 0) {
		r = qu_err_wrap(prog, "the new QEMU");
		goto out;
	}
	made[n] = prog;
	fds[n++] = (struct qu_launch_fd){ prog, 0, QU_FD_PROGRAM, "program", NULL };
	for (size_t i = 0; i < t->nfds; i++) {
		char log[PATH_MAX];
		/* A stderr that is no log file there (a pipe, a socket, a terminal of the source
		 * host) would be /dev/null here: the pipe below takes its place, so that what the
		 * new QEMU says (a secondary's last words) reaches the agent. */
		if (t->fds[i].kind == QU_FD_STDIO && t->fds[i].target == 2 && !log_path(t->fds[i].spec, log, sizeof(log)))
			continue;
		int fd = qu_recreate_fd(&t->record.who, &t->record, &t->fds[i]);
		if (fd < 0) {
			r = fd;
			goto out;
		}
		have_stderr |= t->fds[i].target == 2;
		made[n] = fd;
		fds[n++] = (struct qu_launch_fd){ fd, t->fds[i].target, t->fds[i].kind, t->fds[i].name, NULL };
	}
	if ((r = add_colo_images(t, deadline_us, fds, made, &n)) < 0)
		goto out;
	/* With no log for stderr, a pipe: a new QEMU that fails to start can say why. */
	if (!have_stderr) {
		if (pipe2(errpipe, O_CLOEXEC) < 0) {
			r = qu_err(-errno, "pipe: %s", strerror(errno));
			goto out;
		}
		made[n] = errpipe[1];
		fds[n++] = (struct qu_launch_fd){ errpipe[1], 2, QU_FD_STDIO, "stderr (captured)", NULL };
		t->stderr_rd = errpipe[0];
	}
	struct qu_launch spec = { .argv = t->argv, .envp = t->envp, .cwd = t->cwd, .context = t->context,
				  .fds = fds, .nfds = n };
	r = qu_launch_local(&spec, deadline_us, &t->pid);
	if (r < 0) {
		qu_err_wrap(r, "starting the new QEMU");
		goto out;
	}
	t->pidfd = qu_pidfd_open(t->pid);
	if (t->pidfd < 0) {
		r = qu_err(t->pidfd, "pidfd_open(%d): %s", (int)t->pid, strerror(-t->pidfd));
		goto out;
	}
	t->record.qemu = t->pid;
	t->record.qemu_start = qu_proc_starttime(t->pid);
	qu_session_record_write(&t->record);
	qu_info("agent: new QEMU started: PID %d", (int)t->pid);
	char uri[128], nbd[128] = "";
	if ((r = qu_qmp_connect(t->record.ctl, deadline_us, &t->ctl)) < 0 ||
	    (r = start_incoming(t, host, deadline_us, uri, sizeof(uri))) < 0) {
		add_stderr(t);
		goto out;
	}
	if (t->ndisks) {
		const char *devices[TARGET_MAX_DISKS];
		for (size_t i = 0; i < t->ndisks; i++)
			devices[i] = t->disks[i].device;
		if ((r = qu_nbd_export(t->ctl, host, devices, t->ndisks, t->no_tls ? NULL : QU_TLS_ID, deadline_us, nbd,
				       sizeof(nbd))) < 0)
			goto out;
	}
	reply[0] = '\0';
	qu_kv_addf(reply, len, "pid", "%d", (int)t->pid);
	qu_kv_add(reply, len, "migrate", uri);
	qu_kv_addf(reply, len, "tls", "%d", !t->no_tls);
	if (nbd[0])
		qu_kv_add(reply, len, "nbd", nbd);
	add_ramblocks(t, deadline_us, reply, len);
out:
	for (size_t i = 0; i < n; i++)
		close(made[i]);
	return r;
}

int qu_target_resumed(const struct qu_target *t) { return t->record.resumed; }

/* The migration parameter that names this session's TLS object is emptied before the object
 * goes: a QEMU whose guest runs here stays, and is left as one started here. */
static void clear_tls_creds(struct qu_target *t, uint64_t deadline_us)
{
	if (!t->tls.added)
		return;
	json_object *args = json_object_new_object();
	json_object_object_add(args, "tls-creds", json_object_new_string(""));
	if (qu_qmp_execute(t->ctl, "migrate-set-parameters", args, -1, deadline_us, NULL) < 0)
		qu_info("agent: warning: the QEMU keeps migration parameter tls-creds: %s", qu_err_msg());
}

int qu_target_resume(struct qu_target *t, uint64_t deadline_us, char *reply, size_t len)
{
	char state[32];
	if (!t->ctl)
		return qu_err(-EINVAL, "no new QEMU to resume");
	int r = qu_mig_wait_incoming(t->ctl, t->pidfd, deadline_us);
	if (r < 0) {
		add_stderr(t);
		return r;
	}
	if (t->ndisks && (r = qu_nbd_stop(t->ctl, deadline_us)) < 0)
		return qu_err_wrap(r, "closing the disk exports");
	if ((r = qu_fault(QU_FI_AGENT_BEFORE_CONT)) < 0)
		return r;
	/* From the `cont` on, the guest runs here: whatever happens next, this QEMU stays. */
	t->record.resumed = 1;
	qu_session_record_write(&t->record);
	if ((r = qu_qmp_execute(t->ctl, "cont", NULL, -1, deadline_us, NULL)) < 0 ||
	    (r = qu_qmp_query_string(t->ctl, "query-status", "status", deadline_us, state, sizeof(state))) < 0 ||
	    (r = qu_fault(QU_FI_AGENT_AFTER_CONT)) < 0)
		return r;
	if (strcmp(state, "running"))
		return qu_err(-EIO, "the new QEMU is in run state '%s' after cont", state);
	int64_t resumed = 0;
	qu_qmp_event_time(t->ctl, "RESUME", qu_now_us() + 1000000u, &resumed);
	/* No handshake comes any more: the key goes, and the VM is left as one started here
	 * (a later upgrade of it, local or not, chooses its own transport). */
	char creds[64] = "";
	qu_qmp_query_string(t->ctl, "query-migrate-parameters", "tls-creds", deadline_us, creds, sizeof(creds));
	clear_tls_creds(t, deadline_us);
	qu_tls_remove(t->ctl, &t->tls, deadline_us);
	int a = qu_announce(t->ctl, deadline_us);
	reply[0] = '\0';
	qu_kv_addf(reply, len, "resumed_us", "%lld", (long long)resumed);
	qu_kv_addf(reply, len, "announced", "%d", a == 0);
	qu_kv_addf(reply, len, "tls", "%d", !strcmp(creds, QU_TLS_ID)); /* what the load went through */
	if (a < 0)
		qu_kv_add(reply, len, "announce_error", qu_err_msg());
	return 0;
}

int qu_target_colo(struct qu_target *t, const char *call, const char *host, uint64_t deadline_us, char *reply,
		   size_t len)
{
	char netdev[64] = "";
	if (!t->ctl || t->record.resumed)
		return qu_err(-EINVAL, "standby: no secondary QEMU waits here for the migration");
	/* The filters' wires cross hosts: never in the clear. */
	if (t->no_tls || !t->tls.added)
		return qu_err(-EPROTO, "standby: the secondary's wires run over TLS only (the tool asked for none)");
	qu_kv_get(call, "netdev", netdev, sizeof(netdev));
	long long timeout = qu_kv_num(call, "timeout_ms", 0);
	if (timeout < QU_COLO_TIMEOUT_MIN_MS || timeout > QU_COLO_TIMEOUT_MAX_MS)
		return qu_err(-EINVAL, "standby: heartbeat timeout %lld ms: give %u to %u ms", timeout,
			      QU_COLO_TIMEOUT_MIN_MS, QU_COLO_TIMEOUT_MAX_MS);
	int r = qu_colo_secondary_wire(t->ctl, host, netdev, QU_TLS_ID, deadline_us, reply, len);
	if (r == 0)
		t->colo_timeout_ms = (unsigned)timeout;
	return r;
}

unsigned qu_target_colo_timeout_ms(const struct qu_target *t)
{
	return t->record.resumed || !t->colo_armed ? 0 : t->colo_timeout_ms;
}

/* The events the secondary's monitor has queued so far, dropped; a COLO_EXIT among them is
 * noted (colo_exited). */
static void drain_events(struct qu_target *t)
{
	char name[64];
	json_object *data = NULL;
	for (int i = 0; i < 100000 && qu_qmp_next_event(t->ctl, -1, qu_now_us(), name, sizeof(name), NULL, &data) == 0;
	     i++) {
		t->colo_exited |= !strcmp(name, "COLO_EXIT");
		json_object_put(data);
		data = NULL;
	}
	qu_err_clear(); /* the end of what was there is no error */
}

/* How long a takeover waits for the secondary's COLO thread to end after the primary died. */
#define COLO_EXIT_WAIT_US (5ull * 1000000u)

/* A takeover asked while the secondary's COLO thread is in a checkpoint's first step (its
 * vm_stop drains the block layer with the BQL held, and so runs pending bottom halves) can be
 * run by that thread itself: the failover then joins the thread from within it, and QEMU
 * aborts (read in migration/colo.c: colo_incoming_co's qemu_thread_join). A primary that died
 * closed its stream: the thread ends within moments and says so (COLO_EXIT), and then waits
 * for the takeover in no checkpoint. The takeover waits for that word, a little. After a
 * silence (a cut link) there is none to wait for: the thread waits on a silent stream. */
static void wait_colo_exit(struct qu_target *t, uint64_t deadline_us)
{
	uint64_t until = qu_now_us() + COLO_EXIT_WAIT_US;
	if (until > deadline_us)
		until = deadline_us;
	while (!t->colo_exited) {
		char name[64];
		json_object *data = NULL;
		if (qu_qmp_next_event(t->ctl, -1, until, name, sizeof(name), NULL, &data) < 0) {
			qu_info("agent: no COLO_EXIT from the secondary within %llu ms (%s): taking over without it",
				COLO_EXIT_WAIT_US / 1000, qu_err_msg());
			qu_err_clear();
			return;
		}
		t->colo_exited = !strcmp(name, "COLO_EXIT");
		json_object_put(data);
	}
}

int qu_target_failover(struct qu_target *t, const char *why, int primary_dead, uint64_t deadline_us, char *reply,
		       size_t len)
{
	char mode[32] = "", status[32] = "";
	int r;
	if (!t->ctl || !t->colo_timeout_ms)
		return qu_err(-EINVAL, "standby: no COLO secondary here to take over");
	if (t->record.resumed)
		return 0;
	/* Only a secondary that entered COLO holds a checkpointed guest: one still loading its
	 * first copy holds nothing that could run. */
	qu_stderr_log_drain(&t->stderr_log, t->stderr_rd, t->pid); /* what it said of the primary's end */
	if ((r = qu_qmp_query_string(t->ctl, "query-colo-status", "mode", deadline_us, mode, sizeof(mode))) < 0) {
		int gone = t->pidfd >= 0 && qu_poll_one(t->pidfd, POLLIN, 0) > 0;
		return qu_err_wrap(r, "standby: the secondary's COLO state%s",
				   gone ? " (its QEMU has exited: the agent's log has what it said last)" : "");
	}
	if (strcmp(mode, "secondary"))
		return qu_err(-EIO, "standby: the secondary is not in COLO (mode '%s'): it has no guest to run", mode);
	qu_info("agent: taking over the guest (%s)", why);
	/* The primary's replication writes end before the takeover (qemu-colo.rst, "Secondary
	 * Failover"): nothing may write the secondary's disk behind its guest any more. */
	if (t->ndisks && qu_nbd_stop(t->ctl, deadline_us) < 0)
		qu_info("agent: warning: nbd-server-stop on the secondary: %s", qu_err_msg());
	/* From here the guest runs here: this QEMU stays, whatever happens next. */
	t->record.resumed = 1;
	qu_session_record_write(&t->record);
	/* Each checkpoint left a RESUME queued: the takeover's moment is not among them. */
	drain_events(t);
	if (primary_dead)
		wait_colo_exit(t, deadline_us);
	if ((r = qu_qmp_execute(t->ctl, "x-colo-lost-heartbeat", NULL, -1, deadline_us, NULL)) < 0)
		return qu_err_wrap(r, "standby: x-colo-lost-heartbeat on the secondary");
	while ((r = qu_qmp_query_string(t->ctl, "query-status", "status", deadline_us, status, sizeof(status))) == 0 &&
	       strcmp(status, "running") && qu_now_us() < deadline_us)
		usleep(20000);
	if (r < 0 || strcmp(status, "running"))
		return qu_err(r < 0 ? r : -EIO, "standby: the secondary is '%s' after the takeover", status);
	/* A secondary stopped in a checkpoint resumes (RESUME); one between checkpoints already
	 * ran its vCPUs, and runs the guest from the takeover's answer on. */
	int64_t resumed = 0;
	if (qu_qmp_event_time(t->ctl, "RESUME", qu_now_us(), &resumed) < 0 || !resumed)
		resumed = qu_wall_us();
	/* The guest's output no longer goes to the dead primary (qemu-colo.rst, "Secondary
	 * Failover"); what is left of the wiring is removed. */
	int left = qu_colo_secondary_unwire(t->ctl, deadline_us);
	clear_tls_creds(t, deadline_us);
	qu_tls_remove(t->ctl, &t->tls, deadline_us);
	int a = qu_announce(t->ctl, deadline_us);
	reply[0] = '\0';
	qu_kv_addf(reply, len, "pid", "%d", (int)t->pid);
	qu_kv_addf(reply, len, "resumed_us", "%lld", (long long)resumed);
	qu_kv_addf(reply, len, "announced", "%d", a == 0);
	qu_kv_addf(reply, len, "unwired", "%d", left == 0);
	qu_info("agent: the guest runs here in PID %d%s", (int)t->pid, a == 0 ? ", its MAC addresses announced" : "");
	return 0;
}

int qu_target_heartbeat(struct qu_target *t, char *reply, size_t len)
{
	/* Answered at once, without asking the secondary's monitor (busy for a whole checkpoint's
	 * load): the tool fences its primary when answers stop coming. */
	if (t->pid > 0)
		qu_stderr_log_drain(&t->stderr_log, t->stderr_rd, t->pid);
	if (t->pid <= 0 || t->pidfd < 0 || qu_poll_one(t->pidfd, POLLIN, 0) > 0) {
		qu_stderr_log_flush(&t->stderr_log, t->pid);
		return qu_err(-ESRCH, "the secondary QEMU (PID %d) is gone: the agent's log has what it said last",
			      (int)t->pid);
	}
	/* The supervisor sends its first once COLO runs: silence counts from here, not during
	 * the initial copy (a tool that dies then ends the session, and the secondary goes). */
	t->colo_armed = t->colo_timeout_ms > 0;
	/* A COLO secondary stops and resumes at every checkpoint, and nothing else reads its
	 * monitor while it is protecting: unread, the events would fill the socket and then
	 * QEMU's own buffer without end, and the takeover would find old ones first. Only what
	 * is already readable is read: the answer does not wait. */
	if (t->ctl && !t->record.resumed)
		drain_events(t);
	reply[0] = '\0';
	qu_kv_addf(reply, len, "pid", "%d", (int)t->pid);
	qu_kv_add(reply, len, "status", "alive");
	return 0;
}
