/* What an upgrade did, for people (text) and programs (--json). */
#ifndef QU_REPORT_H
#define QU_REPORT_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct qu_vm;
struct qu_plan;

/* A VM that libvirt runs (upgrade/libvirtgate.h): what was found and done. */
struct qu_report_libvirt {
	int is;                   /* the VM is a libvirt domain (the rest is valid) */
	char domain[132];
	char status[256];         /* its status file */
	char daemon[16];          /* libvirtd or virtqemud, "" when none ran */
	pid_t daemon_pid, daemon_new_pid;
	int stopped, restarted, rewritten;
	char action[768];         /* what is (or would be) done to libvirt, in words */
	char error[768];          /* what went wrong on libvirt's side ("" when nothing) */
};

struct qu_report {
	char result[16];          /* upgraded, failed, planned, refused, unsettled */
	char strategy[48];
	char remote[256];         /* --remote: the other host */
	int announced;            /* --remote: the new QEMU announced the guest's MACs there */
	int tls;                  /* --remote: the migration came over TLS (the agent's word) */
	unsigned long long disk_copied_bytes; /* --remote: what the disk mirrors wrote there */
	int verified;             /* --verify: both hosts' sums of the copy agreed */
	pid_t old_pid, new_pid;
	char old_version[32], new_version[32], machine[128];
	double downtime_ms;       /* as QEMU reports it */
	double total_ms;          /* the whole command, inspect to retirement */
	double commit_ms;         /* from the start until the new QEMU runs the guest */
	uint64_t start_us;        /* when the upgrade started (monotonic), for commit_ms */
	double pause_ms;          /* old QEMU's STOP event to the new one's RESUME (host clock); -1 unknown */
	uint64_t ram_copied_bytes;      /* guest RAM pages QEMU sent */
	uint64_t transferred_bytes;     /* everything on the migration channel */
	uint64_t ram_shared_bytes;      /* guest RAM handed over in place */
	int64_t extra_memory_bytes;     /* the new QEMU's private memory while both ran */
	double memory_wait_ms;          /* a copy waited this long for other copies' memory */
	char error[2048];
	char unchecked[1024];     /* a dry run without the VM's monitor: what it could not check ("" else) */
	char rolled_back[512];    /* what the rollback did, after a failure */
	char tap_watch[1024];     /* after the commit: the taps' down scripts watched, or why not */
	int unsettled;            /* failed past the point of no return: the guardian finishes it */
	struct qu_report_libvirt libvirt;
};

void qu_report_from_plan(struct qu_report *rep, const struct qu_vm *vm, const struct qu_plan *plan);
void qu_report_print_text(const struct qu_report *rep, const struct qu_vm *vm,
			  const struct qu_plan *plan, FILE *f);
/* One JSON object on one line; caller frees. */
char *qu_report_json(const struct qu_report *rep, const struct qu_vm *vm, const struct qu_plan *plan);

#endif
