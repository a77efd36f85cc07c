/* Where the tool and the agent keep their state: /run/qemu-upgrade (in the build for tests,
 * $QEMU_UPGRADE_STATE_DIR may name another). One place for every path under it: the
 * journals, locks and private monitors (<old pid>.journal, .lock, .ctl), the memory ledger,
 * the agent's session records. */
#ifndef QU_STATEDIR_H
#define QU_STATEDIR_H

#include <stddef.h>
#include <sys/types.h>

const char *qu_state_dir(void);
/* <state dir>/<old pid>.<ext> */
void qu_state_path(pid_t old_pid, const char *ext, char *buf, size_t len);

#endif
