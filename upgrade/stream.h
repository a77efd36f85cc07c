/* The handover stream: framed, versioned, checksummed records between the source side (the
 * tool next to the old QEMU) and the destination side (the launcher that starts the new
 * QEMU). Locally it runs over a UNIX socketpair and FD records carry a descriptor with
 * SCM_RIGHTS; remote/ carries the same records over TCP. The format is in docs/stream.md. */
#ifndef QU_STREAM_H
#define QU_STREAM_H

#include <stddef.h>
#include <stdint.h>

#define QU_STREAM_MAGIC 0x47505551u /* "QUPG" in little-endian byte order */
#define QU_STREAM_VERSION 3u
#define QU_STREAM_HDR_LEN 16u
#define QU_STREAM_MAX_PAYLOAD (1u << 20)

enum qu_rec_type {
	QU_REC_HELLO = 1,   /* u32 version, u32 flags (0) */
	QU_REC_ARG = 2,     /* one argv word, NUL-terminated */
	QU_REC_ENV = 3,     /* one "NAME=value", NUL-terminated */
	QU_REC_FD = 4,      /* u32 target fd, u32 kind, name NUL-terminated, then (v3, optional)
			     * "key=value" lines NUL-terminated: what the agent needs to
			     * re-create it; one descriptor, or none with FD_ELIDED */
	QU_REC_CWD = 5,     /* path, NUL-terminated */
	QU_REC_EXEC = 6,    /* empty: start the program now */
	QU_REC_STARTED = 7, /* u32 pid of the started program */
	QU_REC_ERROR = 8,   /* i32 errno, message NUL-terminated */
	QU_REC_END = 9,     /* empty: the sender is done */
	QU_REC_CONTEXT = 10, /* "key=value" lines, NUL-terminated: the process context (v2) */
	QU_REC_CALL = 11,   /* "key=value" lines, NUL-terminated: a request to the agent (v3) */
	QU_REC_REPLY = 12,  /* "key=value" lines, NUL-terminated: the agent's answer (v3) */
	/* 13 was SEALED, the shared-key agent's MAC'd record: retired with it (TLS and ssh
	 * protect the channel now), refused as any unknown type. */
	QU_REC_TYPE_MAX = 12,
};

/* Flag on FD records written to a file: the descriptor itself could not be stored. */
#define QU_REC_FLAG_FD_ELIDED 0x1u

enum qu_fd_kind {
	QU_FD_STDIO = 1,
	QU_FD_CONTROL = 2,   /* the tool's private monitor */
	QU_FD_MIGRATION = 3, /* QEMU's migration channel */
	QU_FD_RAM = 4,       /* a guest RAM backend (memfd or shared file) */
	QU_FD_LISTENER = 5,  /* a listening UNIX socket of a chardev (QMP, HMP, ...) */
	QU_FD_TAP = 6,       /* one queue of a tap device */
	QU_FD_NAMESPACE = 7, /* a namespace to enter (name: "net", "mnt", "user", ...); not
			      * installed, setns()'d */
	QU_FD_VHOST = 8,     /* /dev/vhost-net opened by the tool for one tap queue */
	QU_FD_PTY = 9,       /* a socket to the relay that keeps a pty (old_fd: its master) */
	QU_FD_SOCKET = 10,   /* a connected socket of a chardev (fd=, no server=on) */
	QU_FD_PROGRAM = 11,  /* the program to run, as it was checked: executed (execveat), not
			      * installed */
	QU_FD_DIRECTORY = 12, /* the old QEMU's root ("root") or working ("cwd") directory:
			       * chroot()/fchdir()'d, not installed */
	QU_FD_FDSET = 13,     /* a member of a descriptor set (-add-fd set=N,fd=M) */
	QU_FD_PIDFILE = 14,   /* the manager's PID file for the new QEMU (libvirt's NAME.pid), which
			       * the launcher locks (F_SETLK, byte 0) in the process it executes:
			       * a POSIX lock is its taker's and survives exec, never a descriptor
			       * passing */
};

struct qu_rec {
	uint16_t type;
	uint16_t flags;
	uint32_t len;
	uint8_t *payload; /* len bytes plus a NUL, so string payloads can be read directly */
	int fd;           /* the descriptor an FD record brought, else -1 */
};

/* Checks a header's magic, type and length bound. Returns the payload length or -errno. */
long qu_stream_check_header(const uint8_t hdr[QU_STREAM_HDR_LEN], uint16_t *type, uint16_t *flags);
/* Decodes one record from a buffer (no descriptors). *used gets its size. -EAGAIN when the
 * buffer holds only part of a record; -EBADMSG for a damaged one. */
int qu_stream_decode(const uint8_t *buf, size_t len, struct qu_rec *rec, size_t *used);
/* Validates a record's payload for its type (string termination, sizes, descriptor count). */
int qu_stream_validate(const struct qu_rec *rec);

int qu_stream_send(int sock, uint16_t type, uint16_t flags, const void *payload, uint32_t len, int fd);
int qu_stream_send_str(int sock, uint16_t type, const char *s);
/* spec: NULL, or "key=value" lines describing the descriptor (for an agent that re-creates it). */
int qu_stream_send_fd(int sock, int fd, uint32_t target, uint32_t kind, const char *name, const char *spec);
/* An FD record's spec lines ("" when it has none). */
const char *qu_rec_fd_spec(const struct qu_rec *rec);
int qu_stream_send_error(int sock, int err, const char *msg);
/* Logs "who: <the current error message>" and sends it as an ERROR record with errno -r
 * (EIO when r is not an errno): how an agent tells the tool why it stops. Returns r. */
int qu_stream_send_failure(int sock, const char *who, int r);
/* Reads one whole record; descriptors are accepted only on FD records. */
int qu_stream_recv(int sock, uint64_t deadline_us, struct qu_rec *rec);
void qu_rec_free(struct qu_rec *rec);

uint32_t qu_get_u32(const uint8_t *p);
const char *qu_rec_type_name(uint16_t type);
/* One line describing a record, for `qemu-upgrade dump-stream`. */
void qu_rec_describe(const struct qu_rec *rec, char *buf, size_t len);

#endif
