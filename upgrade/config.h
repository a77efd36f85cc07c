/* /etc/qemu-upgrade.conf (or $QEMU_UPGRADE_CONF): what `--all` and the package hook do.
 *   enabled = yes|no       the package hook runs at all
 *   jobs = N               upgrades at once (default 4)
 *   exclude = NAME PID ... VMs (QEMU -name, or PID) that --all never touches
 *   allow_copy = yes|no    VMs whose RAM must be copied once are copied (default no)
 *   low_memory = yes|no    ... and copied by postcopy, in bounded memory (default no)
 *   binaries = PATH ...    only VMs running one of these binaries (each must be root's, in
 *                          directories only root can write, as every binary --all runs)
 * and the agent's policy (`qemu-upgrade agent`: what an authenticated tool may have it do;
 * remote/policy.h checks a request against it, docs/remote.md "Authorization"):
 *   agent_binaries = PATH ...  the QEMUs it may start (exact paths; default: every
 *                              /usr/bin/qemu-system-*), each root's as every binary it runs
 *   agent_users = NAME|UID ... the users it may start them as (default: none)
 *   agent_allow_root = yes|no  uid 0, group 0 and capabilities allowed (default no)
 *   agent_dirs = DIR ...       where images, logs, sockets and pidfiles may be made (default:
 *                              none)
 *   agent_tls_clients = NAME ... the tools `agent --listen` lets in: a DNS name or IP address
 *                              their x509 certificate holds (default: none; a certificate
 *                              signed by the CA is not enough on its own)
 *   agent_standby = yes|no     this host may hold hot standbys (`qemu-upgrade standby`: a
 *                              secondary with a second copy of the guest's RAM, listening for
 *                              the primary's wires) (default no) */
#ifndef QU_CONFIG_H
#define QU_CONFIG_H

#define QU_CONF_MAX_EXCLUDE 64
#define QU_CONF_MAX_BINARIES 16
#define QU_CONF_MAX_AGENT_USERS 32
#define QU_CONF_MAX_AGENT_DIRS 16
#define QU_CONF_PATH_MAX 256
#define QU_CONF_MAX_TLS_CLIENTS 32
#define QU_CONF_NAME_MAX 254 /* a DNS name, NUL-terminated */

/* The agent's policy. Unset lists keep their defaults (above): nagent_binaries 0 means the
 * default set, nagent_users and nagent_dirs 0 mean none. */
struct qu_agent_policy {
	char binaries[QU_CONF_MAX_BINARIES][QU_CONF_PATH_MAX];
	int nbinaries;
	char users[QU_CONF_MAX_AGENT_USERS][33]; /* names, or decimal uids */
	int nusers;
	int allow_root;
	int standby;
	char dirs[QU_CONF_MAX_AGENT_DIRS][QU_CONF_PATH_MAX]; /* absolute, no '.' or '..', no trailing '/' */
	int ndirs;
	char tls_clients[QU_CONF_MAX_TLS_CLIENTS][QU_CONF_NAME_MAX]; /* DNS names or IP addresses */
	int ntls_clients;
};

struct qu_config {
	int enabled;
	int jobs;
	int allow_copy;
	int low_memory;
	char exclude[QU_CONF_MAX_EXCLUDE][64];
	int nexclude;
	char binaries[QU_CONF_MAX_BINARIES][256];
	int nbinaries;
	struct qu_agent_policy agent;
	char path[256];
};

/* /etc/qemu-upgrade.conf ($QEMU_UPGRADE_CONF in the build for tests). A missing file gives
 * the defaults; a malformed line is -EINVAL with a message naming it. Large: allocate it, or
 * make it static. */
int qu_config_load(struct qu_config *c);
int qu_config_load_file(struct qu_config *c, const char *path);
/* With a 'binaries' list: whether path is in it. */
int qu_config_allows_binary(const struct qu_config *c, const char *path);
int qu_config_excludes(const struct qu_config *c, const char *name, int pid);

#endif
