#include "upgrade/txn.h"
#include "qemu-upgrade.h"
#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "upgrade/clock.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "qemu-integration/vm.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

/* An abstract UNIX socket name in QEMU's JSON migration-channel form. */
static json_object *channel(const char *type, const char *name)
{
	json_object *c = json_object_new_object(), *a = json_object_new_object();
	json_object_object_add(a, "transport", json_object_new_string("socket"));
	json_object_object_add(a, "type", json_object_new_string("unix"));
	json_object_object_add(a, "path", json_object_new_string(name));
	json_object_object_add(a, "abstract", json_object_new_boolean(1));
	json_object_object_add(c, "channel-type", json_object_new_string(type));
	json_object_object_add(c, "addr", a);
	return c;
}

/* Whether PID listens on the abstract UNIX socket @name (in its network namespace). */
static int listening(pid_t pid, const char *name)
{
	char path[64], *text = NULL, *save = NULL;
	int found = 0;
	snprintf(path, sizeof(path), "/proc/%d/net/unix", (int)pid);
	if (qu_read_file(path, &text, NULL) < 0)
		return 0;
	for (char *line = strtok_r(text, "\n", &save); line && !found; line = strtok_r(NULL, "\n", &save)) {
		unsigned long flags;
		char *at = strrchr(line, '@');
		found = at && !strcmp(at + 1, name) && sscanf(line, "%*s %*s %*s %lx", &flags) == 1 && (flags & 0x10000);
	}
	free(text);
	return found;
}

/* The new QEMU listens on the cpr channel early in its start; the old QEMU's migrate fails at
 * once if nothing listens yet. */
static int wait_cpr_listening(struct qu_txn *t)
{
	while (!listening(t->new_pid, t->plan->cpr_channel)) {
		if (qu_pidfd_wait_exit(t->pidfd_new, qu_now_us() + 2000u) == 0) {
			qu_err(-ECHILD, "the new QEMU exited before it listened on its cpr channel");
			txn_add_target_stderr(t);
			return -ECHILD;
		}
		if (qu_now_us() >= t->deadline)
			return qu_err(-ETIMEDOUT, "the new QEMU did not listen on its cpr channel @%s", t->plan->cpr_channel);
	}
	return 0;
}

/* cpr-transfer finds RAM descriptors by backend id and silently makes fresh RAM for an id it
 * does not find: the new QEMU must map the very memfds the old one has, or the guest would
 * run on empty memory. */
static int check_same_ram(struct qu_txn *t)
{
	char *maps = NULL, path[64];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)t->new_pid);
	int r = qu_read_file(path, &maps, NULL);
	if (r < 0)
		return qu_err(r, "cannot read %s", path);
	for (size_t i = 0; i < t->vm->nram && r == 0; i++) {
		struct stat st;
		char fdpath[64];
		snprintf(fdpath, sizeof(fdpath), "/proc/%d/fd/%d", (int)t->vm->pid, t->vm->ram[i].old_fd);
		if (t->vm->ram[i].old_fd < 0 || stat(fdpath, &st) < 0) {
			r = qu_err(-ENOENT, "guest RAM '%s': its descriptor in the old QEMU is unknown", t->vm->ram[i].id);
			break;
		}
		/* maps: "start-end perms offset major:minor inode path" */
		int found = 0;
		char *save = NULL, *copy = strdup(maps);
		for (char *line = copy ? strtok_r(copy, "\n", &save) : NULL; line && !found; line = strtok_r(NULL, "\n", &save)) {
			unsigned maj, min;
			unsigned long ino;
			found = sscanf(line, "%*s %*s %*s %x:%x %lu", &maj, &min, &ino) == 3 && ino == (unsigned long)st.st_ino &&
				makedev(maj, min) == st.st_dev;
		}
		free(copy);
		if (!found)
			r = qu_err(-EIO, "cpr-transfer: the new QEMU does not map guest RAM '%s' (inode %lu) of the old one",
				   t->vm->ram[i].id, (unsigned long)st.st_ino);
	}
	free(maps);
	return r;
}

/* cpr-transfer: the new QEMU, started with the cpr channel on its command line, first waits
 * for the old one's RAM descriptors; only then does its monitor answer. The old QEMU sends
 * them in `migrate`, then waits until the new one has taken the main channel (the closing
 * of the cpr socket says so), which happens at `migrate-incoming`. Both channels are
 * abstract UNIX sockets: QEMU 10.0 takes no descriptor for either (its cpr input wants a
 * UNIX socket, and its old side crashes with a main channel given as fd). */
static int cpr_start(struct qu_txn *t)
{
	int r;
	if ((r = wait_cpr_listening(t)) < 0 || (r = txn_save_old_settings(t)) < 0 ||
	    (r = txn_journal_step(t, QU_PH_MIGRATING)) < 0)
		return r;
	struct qu_mig_settings want = { .events = 1 };
	snprintf(want.mode, sizeof(want.mode), "cpr-transfer");
	if ((r = qu_mig_set(t->old, &want, t->deadline)) < 0)
		return r;
	json_object *args = json_object_new_object(), *ch = json_object_new_array();
	json_object_array_add(ch, channel("main", t->plan->main_channel));
	json_object_array_add(ch, channel("cpr", t->plan->cpr_channel));
	json_object_object_add(args, "channels", ch);
	if ((r = qu_qmp_execute(t->old, "migrate", args, -1, t->deadline, NULL)) < 0)
		return r;
	if ((r = qu_qmp_connect(t->j.ctl, t->deadline, &t->ctl)) < 0)
		return qu_err_wrap(r, "the new QEMU's monitor");
	want = (struct qu_mig_settings){ .events = 1 };
	if ((r = check_same_ram(t)) < 0 || (r = txn_check_ramblocks(t)) < 0 || (r = qu_mig_set(t->ctl, &want, t->deadline)) < 0)
		return r;
	args = json_object_new_object();
	ch = json_object_new_array();
	json_object_array_add(ch, channel("main", t->plan->main_channel));
	json_object_object_add(args, "channels", ch);
	return qu_qmp_execute(t->ctl, "migrate-incoming", args, -1, t->deadline, NULL);
}

const struct qu_strategy_ops qu_cpr_ops = {
	.moving = "cpr-transfer: QEMU passed its RAM descriptors",
	.prepare = cpr_start, /* the old QEMU's migrate is part of the start */
	.hand_over = txn_precopy_finish,
};
