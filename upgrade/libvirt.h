/* A VM that libvirt runs (docs/libvirt.md): how it is recognised, and the one thing of
 * libvirt's record that an upgrade changes, the domain's PID in its status file
 * /run/libvirt/qemu/NAME.xml (and the PID file beside it). The VM's owner controls NAME and the
 * command line: NAME is used only after qu_libvirt_name_ok(), and what is trusted is the
 * status file, root's, in root's directory, whose pid= must name this very process. */
#ifndef QU_LIBVIRT_H
#define QU_LIBVIRT_H

#include <stddef.h>
#include <sys/types.h>

struct qu_argv;

#define QU_LIBVIRT_RUN_DIR "/run/libvirt/qemu"
#define QU_LIBVIRT_NAME_MAX 128          /* longer names are not libvirt's to us: refused */
#define QU_LIBVIRT_STATUS_MAX (8u << 20) /* a status file is ~11 KiB; 8 MiB bounds a hostile one */

struct qu_libvirt {
	int is;                              /* the VM is libvirt's (the rest is valid) */
	char name[QU_LIBVIRT_NAME_MAX + 1];  /* the domain's name */
	char status[256];                    /* /run/libvirt/qemu/NAME.xml */
	char pidfile[256];                   /* /run/libvirt/qemu/NAME.pid ("" when there is none) */
	char monitor[256];                   /* the monitor path the status file records */
	/* What the status file says of the domain now, for a dry run while the daemon holds the
	 * monitor (upgrade/inspect-held.h): */
	char state[32];                      /* <domstatus state=...>: running, paused, ... ("": not said) */
	char async_job[64];                  /* <job async=...> other than none: libvirt's job on it ("": none) */
	int blockjobs;                       /* <blockjobs active='yes'>: 1, 'no': 0, not said: -1 */
};

/* NAME as libvirt's: 1..QU_LIBVIRT_NAME_MAX bytes, no '/', not "." or "..", no control byte. */
int qu_libvirt_name_ok(const char *name);
/* The guest name from a command line's `-name guest=NAME,...` (or `-name NAME`), with
 * QemuOpts' ",," unescaped: 0, -ENOENT without -name, -EINVAL for a name that is not valid. */
int qu_libvirt_name_from_argv(const struct qu_argv *v, char *name, size_t len);
/* Whether /proc/PID/cgroup's text puts the process in a libvirt machine cgroup
 * (".../machine/qemu-N-NAME.libvirt-qemu/..." on cgroupfs, "machine-qemu\x2dN\x2dNAME.scope"
 * under systemd). */
int qu_libvirt_cgroup_is(const char *cgroup_text);

/* The status file's <domstatus pid='N'> (libxml2; nothing outside the root element read):
 * 0 and *pid, the monitor path into monitor (may be ""), or -EBADMSG. */
int qu_libvirt_status_parse(const char *xml, size_t len, pid_t *pid, char *monitor, size_t mlen);
/* The facts above (state, async_job, blockjobs) from a status file's text: 0, or -EBADMSG
 * when its root is not <domstatus>. Values are kept printable and bounded. */
int qu_libvirt_status_facts(const char *xml, size_t len, struct qu_libvirt *lv);
/* The same text with the root element's pid='OLD' (or "OLD") changed to NEW and every other
 * byte as it was: a malloc'd string into *out, or -EBADMSG when the root is not
 * <domstatus ... pid='OLD'>. */
int qu_libvirt_status_set_pid(const char *xml, size_t len, pid_t old_pid, pid_t new_pid, char **out, size_t *out_len);

/* Whether PID is libvirt's VM: 1 (lv filled), 0 (not libvirt's: no -name, no libvirt
 * cgroup or monitor, no status file) or -errno with a message (it looks like libvirt's but
 * its status file cannot be trusted, or names another PID: refused, nothing touched). */
int qu_libvirt_detect(pid_t pid, const struct qu_argv *argv, const char *cgroup_text, struct qu_libvirt *lv);
/* After the commit: pid='OLD' -> pid='NEW' in the status file, and the PID file's number,
 * each atomically (a temporary file beside it, same owner and mode, fsync, rename). 0 or
 * -errno with a message. */
int qu_libvirt_rewrite(const struct qu_libvirt *lv, pid_t old_pid, pid_t new_pid);

/* Before the new QEMU starts: an empty file beside the domain's PID file (NAME.pid's owner
 * and mode, root's directory, O_EXCL), for the launcher to give the new QEMU locked
 * (QU_FD_PIDFILE); after the commit qu_libvirt_rewrite() writes the new PID in it and renames
 * it over NAME.pid, a rollback removes it. Its descriptor (write-only), -ENOENT when the
 * domain has no PID file, or -errno with a message. */
int qu_libvirt_pidfile_prepare(const struct qu_libvirt *lv);

/* The PID the domain's status file names now: 0 and *pid, or -errno with a message. */
int qu_libvirt_recorded_pid(const struct qu_libvirt *lv, pid_t *pid);

/* The rewrite outlives the tool: before the upgrade, <state dir>/<old pid>.libvirt records
 * the domain's name; the one retirement of the old QEMU (upgrade/undo.c: the tool's, the
 * guardian's and --recover's alike) makes the rewrite from it, and a rollback drops it. */
int qu_libvirt_record(const struct qu_libvirt *lv, pid_t old_pid);
/* committed: the new QEMU new_pid holds the guest (rewrite, then drop the record); else drop
 * it. 1 rewritten, 0 no record, -errno with a message (the record stays). */
int qu_libvirt_settle(pid_t old_pid, pid_t new_pid, int committed);

#endif
