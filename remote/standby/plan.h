/* The plan of `qemu-upgrade standby start`: what protecting a VM with COLO would build and
 * wire, or every reason it cannot, found before anything is touched (docs/standby.md). */
#ifndef QU_STANDBY_PLAN_H
#define QU_STANDBY_PLAN_H

#include "qemu-integration/refusals.h"
#include "qemu-integration/vm.h"

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

struct qu_qmp;

#define QU_STANDBY_MAX_NICS 8
#define QU_STANDBY_MAX_DISKS 8
/* The interval between checkpoints (x-checkpoint-delay): measured at 100 and 1000 ms. */
#define QU_STANDBY_INTERVAL_DEFAULT_MS 1000u
#define QU_STANDBY_INTERVAL_MIN_MS 100u
#define QU_STANDBY_INTERVAL_MAX_MS 60000u

/* A NIC whose traffic COLO's filters would hold and compare. */
struct qu_standby_nic {
	char device[QU_MAX_DEVICE_ID]; /* its id, or its QOM path when it has none */
	char type[64];                 /* virtio-net-pci, ... */
	char netdev[64];               /* its backend's id */
	char ifname[32];               /* the tap's interface (B needs one of that name) */
};

/* A disk under a quorum node, whose replication child would be added. */
struct qu_standby_disk {
	char device[64];      /* as query-block names it (the -drive id) */
	char child_node[64];  /* the quorum's one child, the image B needs a copy of */
	char file[PATH_MAX];  /* that child's image */
	char format[16];
	unsigned long long size;
	int taken_over;       /* the quorum runs on the secondary's graph (a guest that took over) */
};

struct qu_standby_plan {
	pid_t pid;
	char host[256];           /* where the secondary runs, as given */
	unsigned interval_ms;
	int ver[3];
	char machine[128];
	char exe[PATH_MAX];       /* the secondary runs the binary at this path on host */
	int kvm;
	char ram_id[64];          /* the primary's RAM backend */
	int ram_explicit;         /* an -object on its command line (else plain -m's implicit one) */
	char ram_type[48];
	uint64_t ram_bytes;
	int remote_probed;        /* the agent on host answered and probed its binary */
	int remote_ver[3];
	long long remote_mem_available; /* bytes, -1 unknown */
	struct qu_standby_nic nics[QU_STANDBY_MAX_NICS];
	size_t nnics;
	struct qu_standby_disk disks[QU_STANDBY_MAX_DISKS];
	size_t ndisks;
	int renew;                /* in: QU_STANDBY_RENEW, a QEMU that took over is renewed first */
	int renew_first;          /* out: this QEMU took over as a secondary, and renew is set */
	struct qu_refusals refusals;
};

/* From an inspected VM and its monitor: the plan, with every blocker in p->refusals. -errno
 * only when QEMU could not be asked (the monitor failed); hostile answers are refusals. */
int qu_standby_plan_local(const struct qu_vm *vm, struct qu_qmp *q, uint64_t deadline_us,
			  struct qu_standby_plan *p);
/* Asks the agent on p->host (ssh:// or the TLS agent in pki_dir) what the binary at p->exe
 * is there; what does not match is a refusal, and so is an agent that cannot be reached. */
void qu_standby_plan_remote(struct qu_standby_plan *p, const char *pki_dir, uint64_t deadline_us);

/* The NICs and other devices (devices.c), the disks (disks.c). */
int qu_standby_devices(const struct qu_vm *vm, struct qu_qmp *q, uint64_t deadline_us, struct qu_standby_plan *p);
int qu_standby_disks(struct qu_qmp *q, uint64_t deadline_us, struct qu_standby_plan *p);
/* A string property of a QOM object (qom-get): 0 with buf filled (printable, truncated to
 * len); -EREMOTEIO when QEMU has no such object or property, -EPROTO when it is not a string. */
int qu_standby_qom_string(struct qu_qmp *q, const char *path, const char *prop, uint64_t deadline_us, char *buf,
			  size_t len);

#endif
