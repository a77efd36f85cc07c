/* /etc/qemu-upgrade.conf (or $QEMU_UPGRADE_CONF): what `--all` and the package hook do.
 *   enabled = yes|no       the package hook runs at all
 *   jobs = N               upgrades at once (default 4)
 *   exclude = NAME PID ... VMs (QEMU -name, or PID) that --all never touches
 *   allow_copy = yes|no    VMs whose RAM must be copied once are copied (default no)
 *   low_memory = yes|no    ... and copied by postcopy, in bounded memory (default no) */
#ifndef QU_CONFIG_H
#define QU_CONFIG_H

#define QU_CONF_MAX_EXCLUDE 64

struct qu_config {
	int enabled;
	int jobs;
	int allow_copy;
	int low_memory;
	char exclude[QU_CONF_MAX_EXCLUDE][64];
	int nexclude;
	char path[256];
};

/* A missing file gives the defaults; a malformed line is -EINVAL with a message naming it. */
int qu_config_load(struct qu_config *c);
int qu_config_excludes(const struct qu_config *c, const char *name, int pid);

#endif
