/* A QMP client: one connection, synchronous commands with deadlines, events kept in arrival
 * order, and descriptors sent with a command (for `getfd`). */
#ifndef QU_QMP_H
#define QU_QMP_H

#include <json-c/json.h>
#include <stdint.h>

struct qu_qmp;

/* A value QMP answered, as a string: "" for a JSON null (json-c gives NULL), which a hostile
 * QEMU may send where a string belongs. */
const char *qu_json_str(json_object *o);
/* A query whose answer is a list (query-block, query-chardev, ...): *list, or -EPROTO with a
 * message when QEMU answered something else. */
struct qu_qmp;
int qu_qmp_query_list(struct qu_qmp *q, const char *cmd, uint64_t deadline_us, json_object **list);
/* A member of an object QMP answered: its string ("" when absent or null), its number (0). */
const char *qu_json_member_str(json_object *o, const char *key);
long long qu_json_member_int(json_object *o, const char *key);

/* Connects to a UNIX socket path, reads the greeting and leaves negotiation mode. For paths
 * only root controls (the tool's own monitors): a VM's socket is connected as the VM's user
 * (upgrade/fdpass/asuser.h) and handed to qu_qmp_connected(). */
int qu_qmp_connect(const char *path, uint64_t deadline_us, struct qu_qmp **out);
/* The same on a socket already connected to path (named in messages); takes ownership of fd,
 * and tells a monitor that another client holds from a slow one. */
int qu_qmp_connected(int fd, const char *path, uint64_t deadline_us, struct qu_qmp **out);
/* The same on an already-connected socket; takes ownership of fd (closed on failure too). */
int qu_qmp_attach(int fd, uint64_t deadline_us, struct qu_qmp **out);
/* Hangs up but keeps the handle (its owner closes it later); later commands fail. QEMU
 * serves one QMP client at a time: this lets another one in. */
void qu_qmp_disconnect(struct qu_qmp *q);
void qu_qmp_close(struct qu_qmp *q);

/* QEMU's version from the greeting, e.g. 7.2.22 -> major 7 minor 2 micro 22. */
void qu_qmp_version(const struct qu_qmp *q, int *major, int *minor, int *micro);

/* Runs cmd with args (consumed; NULL for none). With send_fd >= 0 the descriptor rides along
 * with the command by SCM_RIGHTS. On success *ret (if given) gets the "return" value, which
 * the caller puts. A QMP error is -EREMOTEIO with "cmd: QEMU's description" as message. */
int qu_qmp_execute(struct qu_qmp *q, const char *cmd, json_object *args, int send_fd,
		   uint64_t deadline_us, json_object **ret);

/* Waits for event `name` whose data.status is one of statuses (NULL-terminated; NULL = any).
 * Events already received count. If watch_fd >= 0 becomes readable first (a pidfd whose
 * process died), returns -ECHILD. *data (if given) gets the event's data. */
int qu_qmp_wait_event(struct qu_qmp *q, const char *name, const char *const *statuses,
		      int watch_fd, uint64_t deadline_us, json_object **data);

/* Waits for event `name` like qu_qmp_wait_event and gives the host wall-clock time QEMU
 * stamped on it, in microseconds: events of two QEMUs on one host can be compared. */
int qu_qmp_event_time(struct qu_qmp *q, const char *name, uint64_t deadline_us, int64_t *realtime_us);

/* The next event, queued or read (any name): its name, QEMU's wall-clock stamp and data (the
 * caller puts it; data may be NULL). -ETIMEDOUT at the deadline, -ECONNRESET when QEMU went,
 * -ECHILD when watch_fd (>= 0, a pidfd) became readable first, as qu_qmp_wait_event. */
int qu_qmp_next_event(struct qu_qmp *q, int watch_fd, uint64_t deadline_us, char *name, size_t len,
		      int64_t *realtime_us, json_object **data);
/* For poll(2): the monitor's socket, and whether a message is waiting already read. */
int qu_qmp_fd(const struct qu_qmp *q);
int qu_qmp_buffered(const struct qu_qmp *q);

/* Convenience for commands whose answer is a string member of an object, e.g. query-status. */
int qu_qmp_query_string(struct qu_qmp *q, const char *cmd, const char *member,
			uint64_t deadline_us, char *buf, size_t len);

#endif
