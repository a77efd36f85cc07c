/* What a QEMU binary printed when probed (`--version`, `-machine help`, an option's probe),
 * kept on disk between runs: each probe starts QEMU (30-50 ms each, most of an upgrade's
 * planning), and the answer depends only on the file and on who ran it. An entry names the
 * file by device, inode, size, mtime and ctime (a rewrite, a rename over it, a chmod or a
 * reset mtime all change the ctime, which no user can set), the probe's words, and the uid
 * and gid it ran as; an entry that differs in any of them is not used. The directory is
 * root's alone (/var/cache/qemu-upgrade): an entry is trusted as root's own file. */
#ifndef QU_PROBECACHE_H
#define QU_PROBECACHE_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#define QU_PROBE_CACHE_DIR "/var/cache/qemu-upgrade"

/* The entry for this probe of the file st describes: its output into buf (NUL-terminated,
 * at most cap - 1 bytes) and its exit status in *status. 0, or -ENOENT when there is no
 * usable entry. */
int qu_probe_cache_get(const char *what, uid_t uid, gid_t gid, const struct stat *st, int *status, char *buf,
		       size_t cap);
/* Keeps an answer (best effort: a cache that cannot be written is only slower). */
void qu_probe_cache_put(const char *what, uid_t uid, gid_t gid, const struct stat *st, int status, const char *out);

#endif
