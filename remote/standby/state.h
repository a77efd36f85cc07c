/* A protected VM's state file (STATE_DIR/standby-PID.json, root's directory): written by its
 * supervisor as things change, read by `standby status` and `standby stop`. */
#ifndef QU_STANDBY_STATE_H
#define QU_STANDBY_STATE_H

#include <stdint.h>
#include <sys/types.h>

#define QU_STANDBY_PAUSES 1024 /* the last checkpoints' pauses kept for the median */

struct qu_standby_state {
	pid_t pid;                        /* the VM's QEMU (the primary) */
	unsigned long long pid_start;     /* its start time (/proc/PID/stat), against PID reuse */
	pid_t supervisor;
	unsigned long long supervisor_start;
	char state[16];                   /* syncing, protecting, failed-over, fenced, stopped, broken */
	char reason[512];                 /* why broken */
	char host[256];
	pid_t standby_pid;                /* the secondary, in its host's PID namespace */
	unsigned interval_ms;
	unsigned heartbeat_timeout_ms;
	int64_t failed_over_us;           /* wall clock the secondary ran the guest (failed-over) */
	unsigned long long checkpoints;
	int64_t last_checkpoint_us;       /* wall clock (QEMU's stamp of its RESUME), 0 none */
	double initial_pause_ms;
	double pause_median_ms, pause_max_ms;
	double paused_total_ms;           /* all checkpoints' pauses since protection began; -1 unknown */
	/* Bytes on the migration connection (remote/standby/traffic.h), -1 unknown: until
	 * protection began (the initial copy), per checkpoint (median of the last
	 * QU_STANDBY_PAUSES, max), and all since protection began. */
	long long initial_copy_bytes;
	long long checkpoint_bytes_median, checkpoint_bytes_max;
	unsigned long long protected_bytes;
	int64_t since_us;                 /* wall clock when protection began */
	/* A switchover (`standby switchover`): "" none asked, "asked", "failed: why"; and the
	 * time from the ask to the guest running on the other host, -1 unknown. */
	char switchover[256];
	double switchover_ms;
	unsigned switchover_asks;         /* how many were asked for: the last one's is above */
	/* The supervisor takes a switchover's signal (SIGUSR1): one of an older version would
	 * die of it. */
	int switchover_capable;
	/* The primary's migration settings before protection, for a release without the
	 * supervisor (standby stop, --recover); saved_read 0: unknown. */
	int saved_read, saved_return_path, saved_events, saved_pause_before_switchover;
	long long saved_max_bandwidth, saved_checkpoint_delay;
};

/* The file's path for pid. */
void qu_standby_state_path(pid_t pid, char *out, size_t len);
/* Written whole, atomically (a temporary file renamed). 0, or -errno. */
int qu_standby_state_write(const struct qu_standby_state *s);
/* 0 with s filled; -ENOENT when the VM has no state file; -EBADMSG when it cannot be read. */
int qu_standby_state_read(pid_t pid, struct qu_standby_state *s);
void qu_standby_state_remove(pid_t pid);
/* The share of the time since protection began (to the last checkpoint) that the guest spent
 * stopped in checkpoints, 0 to 1: what protection costs it in run time; -1 unknown. */
double qu_standby_paused_share(const struct qu_standby_state *s);
/* JSON text of s (the caller frees), with last_checkpoint_ms_ago computed from now. */
char *qu_standby_state_json(const struct qu_standby_state *s);

#endif
