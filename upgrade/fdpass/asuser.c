#include "upgrade/fdpass/asuser.h"
#include "upgrade/fdpass/scm.h"
#include "upgrade/log.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

int qu_connect_as(const char *path, uid_t uid, gid_t gid, const gid_t *groups, int ngroups)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return qu_err(-ENAMETOOLONG, "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return qu_err(-errno, "socketpair: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		return qu_err(-e, "fork: %s", strerror(e));
	}
	if (pid == 0) {
		/* The byte says what happened: 0 and the descriptor, or the connect's errno. */
		unsigned char err = 0;
		close(sv[0]);
		int fd = -1;
		if (setgroups((size_t)ngroups, groups) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			err = (unsigned char)errno;
		else if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
			 connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			err = (unsigned char)errno;
		_exit(qu_scm_send(sv[1], &err, 1, &fd, err ? 0 : 1) == 0 ? 0 : 1);
	}
	close(sv[1]);
	unsigned char err = EIO;
	int fd = -1;
	size_t nfds = 0;
	ssize_t n = qu_scm_recv(sv[0], &err, 1, &fd, &nfds, 1);
	close(sv[0]);
	waitpid(pid, NULL, 0);
	if (n == 1 && err == 0 && nfds == 1)
		return fd;
	if (nfds)
		close(fd);
	err = n == 1 && err ? err : EIO;
	return qu_err(-(int)err, "cannot connect to %s as uid %u: %s", path, (unsigned)uid, strerror(err));
}
