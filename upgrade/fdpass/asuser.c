#include "upgrade/fdpass/asuser.h"
#include "upgrade/fdpass/scm.h"
#include "upgrade/log.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

void qu_ident_of(const struct qu_context *c, struct qu_ident *who)
{
	who->uid = c->uid;
	who->gid = c->gid;
	who->ngroups = c->ngroups;
	memcpy(who->groups, c->groups, sizeof(who->groups));
	who->umask = c->umask;
}

enum op { OP_CONNECT, OP_OPEN, OP_LISTEN, OP_REMOVE, OP_CALL };

struct request {
	enum op op;
	const char *path;
	int flags;
	mode_t mode;
	int backlog;
	int (*fn)(void *arg);
	void *arg;
};

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memcpy(sa->sun_path, path, strlen(path) + 1);
	return 0;
}

/* In the child, as the user: the descriptor, or -errno. */
static int do_op(const struct request *q)
{
	struct sockaddr_un sa;
	int fd = -1, r;
	switch (q->op) {
	case OP_OPEN:
		fd = open(q->path, q->flags | O_NOFOLLOW | O_CLOEXEC, q->mode);
		return fd < 0 ? -errno : fd;
	case OP_CALL: {
		r = q->fn(q->arg);
		return r > 0 ? 0 : r;
	}
	case OP_REMOVE:
		if (unlink(q->path) == 0)
			return 0;
		if (errno != EISDIR)
			return -errno;
		return rmdir(q->path) == 0 ? 0 : -errno;
	case OP_CONNECT:
	case OP_LISTEN:
		if ((r = unix_addr(q->path, &sa)) < 0)
			return r;
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
			return -errno;
		if (q->op == OP_CONNECT ? connect(fd, (struct sockaddr *)&sa, sizeof(sa)) :
					  bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, q->backlog)) {
			r = -errno;
			close(fd);
			return r;
		}
		return fd;
	}
	return -EINVAL;
}

/* Forks a child as who for one request: 0 and *fd (-1 when none comes), or -errno. */
static int run_as(const struct qu_ident *who, const struct request *q, int *fd_out)
{
	*fd_out = -1;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		return -e;
	}
	if (pid == 0) {
		/* The byte says what happened: 0 and perhaps a descriptor, or the errno. */
		unsigned char err = 0;
		int fd = -1;
		close(sv[0]);
		umask(who->umask);
		if (setgroups((size_t)who->ngroups, who->groups) < 0 || setresgid(who->gid, who->gid, who->gid) < 0 ||
		    setresuid(who->uid, who->uid, who->uid) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			err = (unsigned char)errno;
		else if ((fd = do_op(q)) < 0)
			err = (unsigned char)-fd;
		/* do_op's 0 means done, with nothing to hand over (the child's stdin is no answer). */
		_exit(qu_scm_send(sv[1], &err, 1, &fd, !err && fd > 0 ? 1 : 0) == 0 ? 0 : 1);
	}
	close(sv[1]);
	unsigned char err = EIO;
	int fd = -1;
	size_t nfds = 0;
	ssize_t n = qu_scm_recv(sv[0], &err, 1, &fd, &nfds, 1);
	close(sv[0]);
	waitpid(pid, NULL, 0);
	if (n == 1 && err == 0) {
		*fd_out = nfds ? fd : -1;
		return 0;
	}
	if (nfds)
		close(fd);
	return -(int)(n == 1 && err ? err : EIO);
}

int qu_connect_as(const struct qu_ident *who, const char *path)
{
	struct request q = { .op = OP_CONNECT, .path = path };
	int fd, r = run_as(who, &q, &fd);
	if (r == 0 && fd < 0)
		r = -EIO;
	if (r < 0)
		return qu_err(r, "cannot connect to %s as uid %u: %s", path, (unsigned)who->uid, strerror(-r));
	return fd;
}

/* A request that must bring a descriptor back. */
static int with_fd(const struct qu_ident *who, const struct request *q)
{
	int fd, r = run_as(who, q, &fd);
	return r < 0 ? r : fd < 0 ? -EIO : fd;
}

int qu_open_as(const struct qu_ident *who, const char *path, int flags, mode_t mode)
{
	struct request q = { .op = OP_OPEN, .path = path, .flags = flags, .mode = mode };
	return with_fd(who, &q);
}

int qu_listen_as(const struct qu_ident *who, const char *path, int backlog)
{
	struct request q = { .op = OP_LISTEN, .path = path, .backlog = backlog };
	return with_fd(who, &q);
}

int qu_run_as(const struct qu_ident *who, int (*fn)(void *arg), void *arg)
{
	struct request q = { .op = OP_CALL, .fn = fn, .arg = arg };
	int fd, r = run_as(who, &q, &fd);
	if (fd >= 0)
		close(fd);
	return r;
}

int qu_remove_as(const struct qu_ident *who, const char *path)
{
	struct request q = { .op = OP_REMOVE, .path = path };
	int fd, r = run_as(who, &q, &fd);
	if (fd >= 0)
		close(fd);
	return r;
}
