#include "upgrade/launcher.h"
#include "upgrade/fdpass/kinds.h"
#include "upgrade/context.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/run.h"
#include "upgrade/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define LAUNCH_MAX_WORDS 4096
#define LAUNCH_MAX_FDS 256

int qu_launch_send_records(int sock, const struct qu_launch *spec)
{
	int r = 0;
	if (spec->cwd)
		r = qu_stream_send_str(sock, QU_REC_CWD, spec->cwd);
	if (r == 0 && spec->context)
		r = qu_stream_send_str(sock, QU_REC_CONTEXT, spec->context);
	for (char **e = spec->envp; r == 0 && e && *e; e++)
		r = qu_stream_send_str(sock, QU_REC_ENV, *e);
	for (char **a = spec->argv; r == 0 && *a; a++)
		r = qu_stream_send_str(sock, QU_REC_ARG, *a);
	for (size_t i = 0; r == 0 && i < spec->nfds; i++)
		r = qu_stream_send_fd(sock, spec->fds[i].fd, (uint32_t)spec->fds[i].target,
				      spec->fds[i].kind, spec->fds[i].name, spec->fds[i].spec);
	return r < 0 ? qu_err(r, "handover stream: send: %s", strerror(-r)) : 0;
}

int qu_launch_send(int sock, const struct qu_launch *spec)
{
	uint8_t hello[8] = { QU_STREAM_VERSION, 0, 0, 0, 0, 0, 0, 0 };
	int r = qu_stream_send(sock, QU_REC_HELLO, 0, hello, sizeof(hello), -1);
	if (r < 0)
		return qu_err(r, "handover stream: send: %s", strerror(-r));
	r = qu_launch_send_records(sock, spec);
	if (r == 0 && (r = qu_stream_send(sock, QU_REC_EXEC, 0, NULL, 0, -1)) < 0)
		return qu_err(r, "handover stream: send: %s", strerror(-r));
	return r;
}

int qu_launch_wait(int sock, uint64_t deadline_us, pid_t *pid)
{
	struct qu_rec rec;
	int r = qu_stream_recv(sock, deadline_us, &rec);
	if (r < 0)
		return qu_err(r, "handover stream: no answer from the launcher: %s", strerror(-r));
	if (rec.type == QU_REC_STARTED) {
		*pid = (pid_t)qu_get_u32(rec.payload);
		r = 0;
	} else if (rec.type == QU_REC_ERROR) {
		r = -(int)qu_get_u32(rec.payload);
		r = qu_err(r ? r : -EIO, "%s", (const char *)rec.payload + 4);
	} else {
		r = qu_err(-EBADMSG, "handover stream: unexpected %s record", qu_rec_type_name(rec.type));
	}
	qu_rec_free(&rec);
	return r;
}

struct request {
	char *argv[LAUNCH_MAX_WORDS + 1], *envp[LAUNCH_MAX_WORDS + 1];
	size_t nargv, nenvp;
	char *cwd;
	char *context;
	int fd[LAUNCH_MAX_FDS], target[LAUNCH_MAX_FDS];
	unsigned char lock[LAUNCH_MAX_FDS]; /* a PID file: locked by the program's own process */
	size_t nfds;
	int ns[QU_LAUNCH_MAX_NS]; /* namespaces to enter before exec */
	size_t nns;
	int root_fd, cwd_fd;  /* the old QEMU's root and working directories, or -1 */
	int prog_fd;          /* the program as the sender checked it, or -1: argv[0] */
};

static void request_free(struct request *q)
{
	for (size_t i = 0; i < q->nargv; i++)
		free(q->argv[i]);
	for (size_t i = 0; i < q->nenvp; i++)
		free(q->envp[i]);
	for (size_t i = 0; i < q->nfds; i++)
		close(q->fd[i]);
	for (size_t i = 0; i < q->nns; i++)
		close(q->ns[i]);
	qu_close(&q->root_fd);
	qu_close(&q->cwd_fd);
	qu_close(&q->prog_fd);
	free(q->cwd);
	free(q->context);
}

/* Takes ownership of rec's payload/fd into the request. */
static int request_add(struct request *q, struct qu_rec *rec)
{
	switch (rec->type) {
	case QU_REC_ARG:
	case QU_REC_ENV: {
		size_t *n = rec->type == QU_REC_ARG ? &q->nargv : &q->nenvp;
		char **v = rec->type == QU_REC_ARG ? q->argv : q->envp;
		if (*n == LAUNCH_MAX_WORDS)
			return -E2BIG;
		v[(*n)++] = (char *)rec->payload;
		rec->payload = NULL;
		return 0;
	}
	case QU_REC_CWD:
		free(q->cwd);
		q->cwd = (char *)rec->payload;
		rec->payload = NULL;
		return 0;
	case QU_REC_CONTEXT:
		free(q->context);
		q->context = (char *)rec->payload;
		rec->payload = NULL;
		return 0;
	case QU_REC_FD: {
		uint32_t target = qu_get_u32(rec->payload), kind = qu_get_u32(rec->payload + 4);
		const char *name = (const char *)rec->payload + 8;
		const struct qu_fd_kind_ops *k = qu_fd_kind(kind);
		if (!k)
			return -EINVAL;
		if (k->use == QU_FD_USE_ENTER) {
			if (rec->fd < 0 || q->nns == QU_LAUNCH_MAX_NS)
				return -EINVAL;
			q->ns[q->nns++] = rec->fd;
			rec->fd = -1;
			return 0;
		}
		if (k->use == QU_FD_USE_EXEC || k->use == QU_FD_USE_DIRECTORY) {
			int *slot = k->use == QU_FD_USE_EXEC ? &q->prog_fd : !strcmp(name, "root") ? &q->root_fd :
				    !strcmp(name, "cwd") ? &q->cwd_fd : NULL;
			if (rec->fd < 0 || !slot || *slot >= 0)
				return -EINVAL;
			*slot = rec->fd;
			rec->fd = -1;
			return 0;
		}
		if (rec->fd < 0 || q->nfds == LAUNCH_MAX_FDS || target >= LAUNCH_MAX_FDS + 3)
			return -EINVAL;
		q->fd[q->nfds] = rec->fd;
		q->lock[q->nfds] = kind == QU_FD_PIDFILE;
		q->target[q->nfds++] = (int)target;
		rec->fd = -1;
		return 0;
	}
	}
	return -EBADMSG;
}

/* In the child about to exec: received descriptors to their target numbers, stdio that was
 * not given to /dev/null, and nothing else open but keep_fd and keep2 (close-on-exec, above
 * every target; keep2 is -1 or above keep_fd). */
static int place_fds(struct request *q, int keep_fd, int keep2)
{
	int maxt = 2;
	for (size_t i = 0; i < q->nfds; i++)
		maxt = q->target[i] > maxt ? q->target[i] : maxt;
	/* Move every source above all targets first, so no dup2 overwrites a pending source. */
	for (size_t i = 0; i < q->nfds; i++) {
		int hi = fcntl(q->fd[i], F_DUPFD_CLOEXEC, maxt + 1);
		if (hi < 0)
			return -errno;
		close(q->fd[i]);
		q->fd[i] = hi;
	}
	int have[3] = { 0, 0, 0 };
	for (size_t i = 0; i < q->nfds; i++) {
		if (dup2(q->fd[i], q->target[i]) < 0)
			return -errno;
		if (q->target[i] < 3)
			have[q->target[i]] = 1;
	}
	for (int s = 0; s < 3; s++) {
		if (have[s])
			continue;
		int nul = open("/dev/null", O_RDWR);
		if (nul < 0 || dup2(nul, s) < 0)
			return -errno;
		if (nul != s)
			close(nul);
	}
	/* Close every descriptor that is not a target. */
	for (int fd = 3; fd <= maxt; fd++) {
		int keep = 0;
		for (size_t i = 0; i < q->nfds; i++)
			keep |= q->target[i] == fd;
		if (!keep)
			close(fd);
	}
	int keep[2] = { keep_fd, keep2 }, from = maxt + 1;
	for (int k = 0; k < 2; k++) {
		if (keep[k] < 0)
			continue;
		if (keep[k] > from && close_range((unsigned)from, (unsigned)keep[k] - 1, 0) < 0)
			return -errno;
		from = keep[k] + 1;
	}
	return close_range((unsigned)from, ~0U, 0) < 0 ? -errno : 0;
}

static void reset_signals(void)
{
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
}

/* What the child reports: that it could not exec (errno and, for a context step, which), or
 * the PID of the grandchild that runs the program (in a PID namespace it needed a fork). */
struct launch_status {
	int err;
	pid_t pid;
	char what[200];
};

static const char *ns_name(int type)
{
	switch (type) {
	case CLONE_NEWNS: return "mount";
	case CLONE_NEWUSER: return "user";
	case CLONE_NEWPID: return "PID";
	case CLONE_NEWNET: return "network";
	case CLONE_NEWIPC: return "IPC";
	case CLONE_NEWUTS: return "UTS";
	case CLONE_NEWCGROUP: return "cgroup";
	case CLONE_NEWTIME: return "time";
	}
	return "unknown";
}

enum ns_step { NS_OTHERS, NS_MOUNT, NS_USER };

/* Namespaces are entered in three steps: those owned by the user namespace we act in first,
 * then the mount namespace (after it, paths are the old QEMU's; its root and working directory
 * come next), the user namespace last (joining it gives up our capabilities over the others,
 * and resets the bounding set, which the identity step then narrows). Sets *fork_after when
 * the PID or time namespace is entered: only children are born there. */
static int enter_namespaces(struct request *q, enum ns_step step, int *fork_after, char *what, size_t len)
{
	for (size_t i = 0; i < q->nns; i++) {
		int type = ioctl(q->ns[i], NS_GET_NSTYPE);
		if (type < 0) {
			snprintf(what, len, "cannot tell the type of a namespace");
			return -errno;
		}
		enum ns_step its = type == CLONE_NEWUSER ? NS_USER : type == CLONE_NEWNS ? NS_MOUNT : NS_OTHERS;
		if (its != step)
			continue;
		if (setns(q->ns[i], type) < 0) {
			int e = errno;
			snprintf(what, len, "cannot enter the old QEMU's %s namespace", ns_name(type));
			return -e;
		}
		*fork_after |= type == CLONE_NEWPID || type == CLONE_NEWTIME;
	}
	return 0;
}

/* The PID files among the installed descriptors, write-locked at byte 0 as libvirt locks its
 * own (virPidFileAcquirePath) and QEMU its -pidfile: by the process that executes the
 * program, whose lock it stays. */
static int lock_pidfiles(const struct request *q, char *what, size_t len)
{
	for (size_t i = 0; i < q->nfds; i++) {
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
		if (q->lock[i] && fcntl(q->target[i], F_SETLK, &fl) < 0) {
			int e = errno;
			snprintf(what, len, "cannot lock the PID file given at descriptor %d", q->target[i]);
			return -e;
		}
	}
	return 0;
}

/* The child's way from the launcher to the program; never returns. */
static void child(struct request *q, int st)
{
	struct launch_status ls = { 0, 0, "" };
	struct qu_context *ctx = NULL;
	int r = 0, fork_after = 0, prog = -1;
	if (q->prog_fd >= 0 && (prog = fcntl(q->prog_fd, F_DUPFD_CLOEXEC, st + 1)) < 0)
		r = -errno;
	if (r == 0 && q->context) {
		ctx = malloc(sizeof(*ctx));
		r = ctx ? qu_context_decode(q->context, ctx) : -ENOMEM;
		/* This host's view first: cgroups, limits, label, groups. */
		if (r == 0)
			r = qu_context_apply(ctx, ls.what, sizeof(ls.what));
	}
	if (r == 0)
		r = enter_namespaces(q, NS_OTHERS, &fork_after, ls.what, sizeof(ls.what));
	if (r == 0)
		r = enter_namespaces(q, NS_MOUNT, &fork_after, ls.what, sizeof(ls.what));
	if (r == 0 && q->root_fd >= 0 && (fchdir(q->root_fd) < 0 || chroot(".") < 0)) {
		r = -errno;
		snprintf(ls.what, sizeof(ls.what), "cannot enter the old QEMU's root directory");
	}
	if (r == 0 && q->cwd_fd >= 0 && fchdir(q->cwd_fd) < 0) {
		r = -errno;
		snprintf(ls.what, sizeof(ls.what), "cannot enter the old QEMU's working directory");
	}
	if (r == 0)
		r = enter_namespaces(q, NS_USER, &fork_after, ls.what, sizeof(ls.what));
	if (r == 0)
		r = place_fds(q, st, prog);
	if (r == 0 && ctx)
		r = qu_context_apply_identity(ctx, ls.what, sizeof(ls.what));
	free(ctx);
	/* A working directory by path (from another host): walked as the VM's user, whose path it is. */
	if (r == 0 && q->cwd_fd < 0 && q->cwd && chdir(q->cwd) < 0) {
		r = -errno;
		snprintf(ls.what, sizeof(ls.what), "cannot enter the working directory %.150s", q->cwd);
	}
	if (r == 0 && fork_after) {
		pid_t g = fork();
		if (g > 0) {
			ls.pid = g;
			_exit(write(st, &ls, sizeof(ls)) == (ssize_t)sizeof(ls) ? 0 : 127);
		}
		if (g < 0)
			r = -errno;
	}
	if (r == 0)
		r = lock_pidfiles(q, ls.what, sizeof(ls.what));
	if (r == 0) {
		if (prog >= 0)
			r = qu_exec_fd(prog, q->argv, q->envp);
		else
			r = execve(q->argv[0], q->argv, q->envp) < 0 ? -errno : -EIO;
	}
	ls.err = -r;
	ls.pid = 0;
	if (write(st, &ls, sizeof(ls)) < 0)
		_exit(127);
	_exit(127);
}

/* Forks the program; returns its pid once exec succeeded, or -errno (the exec's error, or
 * the context step that failed, named in what). */
static pid_t start_program(struct request *q, char *what, size_t what_len)
{
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return -e;
	}
	if (pid == 0) {
		close(pipefd[0]);
		setsid();
		reset_signals();
		/* Keep the status pipe clear of the target numbers. */
		int st = fcntl(pipefd[1], F_DUPFD_CLOEXEC, LAUNCH_MAX_FDS + 8);
		if (st < 0)
			_exit(127);
		close(pipefd[1]);
		child(q, st);
	}
	close(pipefd[1]);
	/* EOF: close-on-exec closed the pipe, the exec happened (a grandchild's PID may come first). */
	struct launch_status ls;
	pid_t started = pid;
	ssize_t n;
	while ((n = qu_read_full(pipefd[0], &ls, sizeof(ls))) == (ssize_t)sizeof(ls) && !ls.err && ls.pid > 0) {
		waitpid(pid, NULL, 0); /* the child that forked it into the namespace */
		started = ls.pid;
	}
	close(pipefd[0]);
	if (n == (ssize_t)sizeof(ls)) {
		waitpid(started, NULL, 0); /* ours: the launcher is a subreaper */
		if (started != pid)
			waitpid(pid, NULL, WNOHANG);
		ls.what[sizeof(ls.what) - 1] = '\0';
		snprintf(what, what_len, "%s", ls.what);
		return -ls.err;
	}
	return started;
}

int qu_launcher_serve(int sock, uint64_t deadline_us)
{
	struct request *q = calloc(1, sizeof(*q));
	struct qu_rec rec;
	int r, hello = 0;

	if (!q)
		return qu_stream_send_error(sock, ENOMEM, "launcher: out of memory");
	q->root_fd = q->cwd_fd = q->prog_fd = -1;
	/* A program that dies before its exec is reaped here, not left to whoever started us. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	for (;;) {
		r = qu_stream_recv(sock, deadline_us, &rec);
		if (r < 0)
			break;
		if (!hello) {
			r = rec.type == QU_REC_HELLO && qu_get_u32(rec.payload) == QU_STREAM_VERSION ? 0 : -EPROTO;
			hello = 1;
		} else if (rec.type == QU_REC_EXEC) {
			qu_rec_free(&rec);
			break;
		} else {
			r = request_add(q, &rec);
		}
		qu_rec_free(&rec);
		if (r < 0)
			break;
	}
	if (r == 0 && q->nargv == 0)
		r = -EINVAL;
	if (r < 0) {
		char msg[256];
		snprintf(msg, sizeof(msg), "launcher: bad handover stream: %s", strerror(-r));
		qu_stream_send_error(sock, -r, msg);
		request_free(q);
		free(q);
		return r;
	}
	char what[200] = "";
	pid_t pid = start_program(q, what, sizeof(what));
	if (pid < 0) {
		char msg[PATH_MAX + 256];
		if (what[0])
			snprintf(msg, sizeof(msg), "cannot start %s: %s: %s", q->argv[0], what, strerror((int)-pid));
		else
			snprintf(msg, sizeof(msg), "cannot execute %s: %s", q->argv[0], strerror((int)-pid));
		r = qu_stream_send_error(sock, (int)-pid, msg);
		r = (int)pid;
	} else {
		uint8_t p[4] = { (uint8_t)pid, (uint8_t)(pid >> 8), (uint8_t)(pid >> 16), (uint8_t)(pid >> 24) };
		r = qu_stream_send(sock, QU_REC_STARTED, 0, p, sizeof(p), -1);
	}
	request_free(q);
	free(q);
	return r;
}

int qu_launch_local(const struct qu_launch *spec, uint64_t deadline_us, pid_t *pid)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return qu_err(-errno, "socketpair: %s", strerror(errno));
	/* The started program outlives the launcher; as subreaper we can still reap it. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	pid_t launcher = fork();
	if (launcher < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		return qu_err(-e, "fork: %s", strerror(e));
	}
	if (launcher == 0) {
		close(sv[0]);
		_exit(qu_launcher_serve(sv[1], deadline_us) < 0 ? 1 : 0);
	}
	close(sv[1]);
	int r = qu_launch_send(sv[0], spec);
	if (r == 0)
		r = qu_launch_wait(sv[0], deadline_us, pid);
	close(sv[0]);
	waitpid(launcher, NULL, 0);
	return r;
}

size_t qu_launch_fds_of(const struct qu_carried *c, size_t n, const int *local, int installed_only,
			struct qu_launch_fd *out)
{
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		const struct qu_fd_kind_ops *k = qu_fd_kind(c[i].kind);
		if (installed_only && (!k || k->use != QU_FD_USE_INSTALL))
			continue;
		out[m++] = (struct qu_launch_fd){ local ? local[i] : -1, c[i].target, c[i].kind, c[i].name, c[i].spec };
	}
	return m;
}
