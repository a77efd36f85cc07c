/* What inspect learns about a running VM: facts only, nothing changed. */
#ifndef QU_VM_H
#define QU_VM_H

#include "qemu-integration/argv.h"
#include "upgrade/context.h"
#include "upgrade/fdpass/fdtable.h"
#include "upgrade/fdpass/pidfd.h"

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#define QU_MAX_RAM 16
#define QU_MAX_LISTENERS 16
#define QU_SUN_PATH_MAX 108
#define QU_MAX_REBOUND 4

/* Our private monitor's chardev id; a command line that has it came from an earlier upgrade. */
#define QU_CTL_CHARDEV "qemu-upgrade-ctl"

struct qu_ram {
	char id[64];
	char qom_type[48];     /* memory-backend-memfd, -file, -ram */
	uint64_t size;
	int share;
	long arg;              /* index of its -object in the command line; -1: none */
	int old_fd;            /* its descriptor in the old QEMU; -1: not found */
	char backing[PATH_MAX]; /* what the descriptor points to */
	int hugetlb;           /* memory-backend-memfd,hugetlb=on */
	uint64_t hugetlb_size; /* its hugetlbsize= (0: the host's default) */
	uint64_t page_size;    /* huge page size of its memory (hugetlbfs, hugetlb memfd); 0: normal pages */
};

struct qu_listener {
	char chardev[64];      /* chardev id; for -qmp/-monitor one the rewriter makes up */
	char path[QU_SUN_PATH_MAX];
	long arg;              /* index of the -chardev, -qmp or -monitor option */
	int legacy;            /* written as -qmp/-monitor unix:PATH,server=on */
	int control;           /* a QMP monitor listens here */
	int pretty;            /* -qmp-pretty */
	int old_fd;
};

#define QU_MAX_NETDEVS 8
#define QU_MAX_QUEUES 8

/* A -netdev tap whose descriptors move to the new QEMU (a tap cannot be opened twice). */
struct qu_tap {
	char id[64];
	long arg;                  /* index of its -netdev option */
	int old_fds[QU_MAX_QUEUES]; /* one per queue, in queue order */
	int nfds;
	int vnet_hdr_len;          /* as the old QEMU left it, put back after the new one starts */
	int vnet_hdr;              /* the queues carry a virtio-net header (IFF_VNET_HDR): 1, 0, -1 unknown */
	int downscript;            /* QEMU would run a downscript when it exits */
	int vhost;                 /* vhost=on, vhostforce=on or vhostfd(s)=: in-kernel virtio-net */
	char ifname[32];
};

#define QU_MAX_PTYS 8

/* A character device on a pty (-chardev pty, -serial pty), or one an earlier upgrade turned
 * into a socket to a relay that keeps the pty (-chardev socket,fd=N without server=on). */
struct qu_pty {
	char chardev[64];          /* chardev id (-serial pty: QEMU's "serialK") */
	long arg;                  /* index of the option */
	int serial;                /* -serial pty */
	int monitor;               /* -monitor pty (an HMP monitor): its rank among them, from 1 */
	int relayed;               /* already a connected socket: carried as it is */
	int old_fd;                /* the pty master (or the socket) in the old QEMU; -1 unknown */
	char pts[32];              /* /dev/pts/N, as query-chardev says */
};

#define QU_MAX_FDSET_FDS 16
#define QU_MAX_PERIPHERALS 256
#define QU_MAX_DEVICE_ID 128  /* QEMU does not bound ids; longer ones are not matched */
/* The highest set number believed from QMP (QEMU's own are small: it picks the lowest free). */
#define QU_MAX_FDSET_ID 65535

/* One descriptor of a descriptor set (-add-fd, QMP add-fd), as query-fdsets lists it: QEMU
 * dups the passed descriptor into the set and closes the one it was given, so the number on
 * the command line is not the member's. */
struct qu_fdset_fd {
	int set;                   /* fdset-id: /dev/fdset/N */
	int old_fd;                /* the member's number in the old QEMU */
	int has_opaque;
	char opaque[128];
};

struct qu_vm {
	pid_t pid;
	struct qu_pin pin;       /* held from before the first read of /proc/PID to the end */
	struct qu_fdtab fds;     /* /proc/PID/fd, read once right after the pin: every user looks here */
	char exe[PATH_MAX];      /* /proc/PID/exe as the kernel shows it */
	char exe_path[PATH_MAX]; /* the same path without " (deleted)" */
	int exe_deleted;
	struct qu_argv argv;
	char **env;              /* NULL-terminated */
	char cwd[PATH_MAX];
	char qmp_path[QU_SUN_PATH_MAX];
	int qmp_root;            /* the monitor is root's socket (libvirt's), connected to as root */
	int ver[3];
	char machine[128];       /* the concrete type, e.g. pc-q35-7.2 */
	char runstate[32];
	char migration[32];      /* query-migrate status, "none" if never migrated */
	struct qu_ram ram[QU_MAX_RAM];
	size_t nram;
	struct qu_listener lis[QU_MAX_LISTENERS];
	size_t nlis;
	/* UNIX socket paths the new QEMU binds anew (unlinking the old QEMU's): -vnc unix:PATH.
	 * Kept aside so that a rollback can give the path back to the old QEMU's socket. */
	char rebound[QU_MAX_REBOUND][QU_SUN_PATH_MAX];
	size_t nrebound;
	struct qu_context ctx;   /* user, cgroups, limits, affinity, ... to reproduce */
	struct qu_tap taps[QU_MAX_NETDEVS];
	size_t ntaps;
	struct qu_pty ptys[QU_MAX_PTYS];
	size_t nptys;
	struct qu_fdset_fd fdset_fds[QU_MAX_FDSET_FDS]; /* query-fdsets */
	size_t nfdset_fds;
	int fdsets_truncated;    /* more members than fdset_fds holds */
	int fdsets_invalid;      /* query-fdsets listed a member no QEMU could have (left out of fdset_fds) */
	/* The ids of the devices QEMU has now (qom-list /machine/peripheral): the command line's
	 * -device ids, less what the guest unplugged, plus what device_add added. */
	char peripherals[QU_MAX_PERIPHERALS][QU_MAX_DEVICE_ID];
	size_t nperipherals;
	int peripherals_known;   /* the list was read whole (else nothing is judged by it) */
	char pidfile[PATH_MAX];
	char stdout_link[PATH_MAX], stderr_link[PATH_MAX];
	char blockers[512];      /* query-migrate blocked-reasons, joined */
	int block_jobs;          /* running block jobs (query-block-jobs) */
	int kvm;                 /* query-kvm: the guest runs under KVM (else TCG) */
	int aux_ram_share;       /* -machine aux-ram-share=on (QEMU >= 10.0): cpr-transfer possible */
	long long anon_bytes;    /* the old QEMU's private memory: the new one will need about as much */
	char refusal[1024];      /* set when inspect found something that cannot be carried */
};

#endif
