/* The agent's authorization: whether what an authenticated tool asks for stays inside this
 * host's policy (the agent_* settings of /etc/qemu-upgrade.conf, upgrade/config.h): the
 * program to start, the identity to start it as, and every path the session would make for
 * it. The session runs all of it before anything is made, and each violation is added to a
 * list with what to change, so that the tool hears them all at once (docs/remote.md,
 * "Authorization"). */
#ifndef QU_REMOTE_POLICY_H
#define QU_REMOTE_POLICY_H

#include "qemu-integration/refusals.h"
#include "upgrade/config.h"
#include "upgrade/context.h"

#include <limits.h>
#include <stddef.h>

struct qu_policy {
	struct qu_config conf;
	int error;                                 /* the file could not be read: all is refused */
	char why[512];
	char real[QU_CONF_MAX_AGENT_DIRS][PATH_MAX]; /* each of agent_dirs where it really is ("": absent) */
};

/* Reads the policy (at a session's start): a new one, which every check refuses with the file's
 * error when it could not be read or parsed; NULL when out of memory. */
struct qu_policy *qu_policy_load(void);
void qu_policy_free(struct qu_policy *p);

/* The program to start (or probe) at path: one of agent_binaries (by default /usr/bin/
 * qemu-system-*). With check_file, also that the file passes the rule for programs to run
 * (root's, in directories only root can write: qemu-integration/binary.h). */
void qu_policy_binary(const struct qu_policy *p, const char *path, int check_file, struct qu_refusals *out);
/* The identity the new QEMU would run as: uid in agent_users, or root with agent_allow_root
 * (also for group 0, capabilities and real-time scheduling); its groups the user's own here;
 * never a user namespace (nothing here would map it). */
void qu_policy_identity(const struct qu_policy *p, const struct qu_context *c, struct qu_refusals *out);
/* A file or socket the session (or the new QEMU) would make at path, what it is for the
 * message ("listening socket"): its directory under one of agent_dirs where it really is,
 * walked from / with no link on the way but root's (upgrade/safepath.h), the entry not a link;
 * with must_be_new, not there yet. */
void qu_policy_path(const struct qu_policy *p, const char *path, const char *what, int must_be_new,
		    struct qu_refusals *out);
/* The files and sockets QEMU itself would make from its command line (-pidfile, -D, -mem-path
 * and memory-backend-file's mem-path, file chardevs and their logfile=, server sockets, -vnc
 * unix:, -trace file=), each through qu_policy_path. */
void qu_policy_argv(const struct qu_policy *p, char *const *argv, size_t argc, struct qu_refusals *out);
/* Hosting a hot standby (a COLO secondary): only with agent_standby = yes. */
void qu_policy_standby(const struct qu_policy *p, struct qu_refusals *out);

#endif
