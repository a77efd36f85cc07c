/* /etc/qemu-upgrade.conf (or $QEMU_UPGRADE_CONF): what `--all` and the package hook do.
 *   enabled = yes|no       the package hook runs at all
 *   jobs = N               upgrades at once (default 4)
 *   exclude = NAME PID ... VMs (QEMU -name, or PID) that --all never touches
 *   allow_copy = yes|no    VMs whose RAM must be copied once are copied (default no)
 *   low_memory = yes|no    ... and copied by postcopy, in bounded memory (default no)
 *   binaries = PATH ...    only VMs running one of these binaries (each must be root's, in
 *                          directories only root can write, as every binary --all runs) */
#ifndef QU_CONFIG_H
#define QU_CONFIG_H

#define QU_CONF_MAX_EXCLUDE 64
#define QU_CONF_MAX_BINARIES 16

struct qu_config {
	int enabled;
	int jobs;
	int allow_copy;
	int low_memory;
	char exclude[QU_CONF_MAX_EXCLUDE][64];
	int nexclude;
	char binaries[QU_CONF_MAX_BINARIES][256];
	int nbinaries;
	char path[256];
};

/* /etc/qemu-upgrade.conf ($QEMU_UPGRADE_CONF in the build for tests). A missing file gives
 * the defaults; a malformed line is -EINVAL with a message naming it. */
int qu_config_load(struct qu_config *c);
int qu_config_load_file(struct qu_config *c, const char *path);
/* With a 'binaries' list: whether path is in it. */
int qu_config_allows_binary(const struct qu_config *c, const char *path);
int qu_config_excludes(const struct qu_config *c, const char *name, int pid);

#endif
