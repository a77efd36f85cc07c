/* inspect: facts about a running VM from /proc/PID and QMP query commands. Changes nothing. */
#include "qemu-integration/fdsets.h"
#include "qemu-integration/option.h"
#include "qemu-integration/opts.h"
#include "qemu-integration/qmp.h"
#include "upgrade/fdpass/asuser.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/fault.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/pageflip/ram.h"
#include "qemu-integration/vm.h"
#include "upgrade/inspect.h"
#include "upgrade/fdpass/rootsock.h"
#include "qemu-integration/monitors.h"
#include "qemu-integration/netdev.h"
#include "qemu-integration/ptys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void qu_vm_free(struct qu_vm *vm)
{
	qu_pin_close(&vm->pin);
	qu_fdtab_free(&vm->fds);
	qu_argv_free(&vm->argv);
	qu_strv_free(vm->env);
	vm->env = NULL;
}

static int read_proc(struct qu_vm *vm)
{
	char p[64], *buf = NULL;
	size_t len;
	pid_t pid = vm->pid;
	int r;

	if ((r = qu_proc_readlink(pid, "exe", vm->exe, sizeof(vm->exe))) < 0)
		return qu_err(r, "cannot read /proc/%d/exe: %s (run as root or as the VM's user)",
			      (int)pid, strerror(-r));
	snprintf(vm->exe_path, sizeof(vm->exe_path), "%s", vm->exe);
	char *del = strstr(vm->exe_path, " (deleted)");
	if (del && del[10] == '\0') {
		*del = '\0';
		vm->exe_deleted = 1;
	}
	snprintf(p, sizeof(p), "/proc/%d/cmdline", (int)pid);
	if ((r = qu_read_file(p, &buf, &len)) < 0)
		return qu_err(r, "cannot read %s: %s", p, strerror(-r));
	r = qu_argv_from_cmdline(buf, len, &vm->argv);
	free(buf);
	const char *base = strrchr(vm->exe_path, '/');
	base = base ? base + 1 : vm->exe_path;
	if (r < 0 || strncmp(base, "qemu-system-", 12))
		return qu_err(-EINVAL, "PID %d is not a QEMU system emulator (its executable is %s)",
			      (int)pid, vm->exe);

	snprintf(p, sizeof(p), "/proc/%d/environ", (int)pid);
	if ((r = qu_read_file(p, &buf, &len)) < 0)
		return qu_err(r, "cannot read %s: %s", p, strerror(-r));
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += buf[i] == '\0';
	vm->env = calloc(n + 1, sizeof(char *));
	/* A QEMU that came out of a cpr-exec (--keep-pid) shows the variable through which CPR
	 * found its state after the exec: a new QEMU given it would read its state from whatever
	 * that descriptor number is in the new process. */
	for (size_t i = 0, k = 0; vm->env && i < len && k < n; i += strlen(buf + i) + 1)
		if (strncmp(buf + i, "QEMU_CPR_EXEC_STATE=", 20))
			vm->env[k++] = strdup(buf + i);
	free(buf);
	if (!vm->env)
		return -ENOMEM;
	qu_proc_readlink(pid, "cwd", vm->cwd, sizeof(vm->cwd));
	qu_proc_readlink(pid, "fd/1", vm->stdout_link, sizeof(vm->stdout_link));
	qu_proc_readlink(pid, "fd/2", vm->stderr_link, sizeof(vm->stderr_link));
	long pf = qu_argv_find(&vm->argv, "pidfile", 0);
	if (pf >= 0)
		snprintf(vm->pidfile, sizeof(vm->pidfile), "%s", vm->argv.a[pf].val);
	return 0;
}

/* The listening sockets' descriptors in the old QEMU, found through its socket table. */
static int find_listener_fds(struct qu_vm *vm)
{
	for (size_t i = 0; i < vm->nlis; i++) {
		struct qu_listener *l = &vm->lis[i];
		unsigned long ino;
		if (l->old_fd >= 0)
			continue;
		if (qu_proc_unix_listener(vm->pid, &vm->fds, l->path, &ino) < 0 ||
		    (l->old_fd = qu_fdtab_by_socket(&vm->fds, ino)) < 0) {
			l->old_fd = -1;
			return qu_err(-ENOENT, "chardev '%s': no listening socket at %s in PID %d",
				      l->chardev, l->path, (int)vm->pid);
		}
	}
	return 0;
}

static int qom_get_string(struct qu_qmp *q, const char *path, const char *prop,
			  uint64_t deadline_us, char *buf, size_t len)
{
	json_object *args = json_object_new_object(), *ret = NULL;
	json_object_object_add(args, "path", json_object_new_string(path));
	json_object_object_add(args, "property", json_object_new_string(prop));
	int r = qu_qmp_execute(q, "qom-get", args, -1, deadline_us, &ret);
	if (r < 0)
		return r;
	qu_copy_printable(buf, len, json_object_get_string(ret));
	json_object_put(ret);
	return 0;
}

/* The -object option that created backend id, or -1 (made by QEMU, or by object-add). */
static long backend_arg(const struct qu_vm *vm, const char *id)
{
	for (long i = -1; (i = qu_argv_find(&vm->argv, "object", (size_t)(i + 1))) >= 0;) {
		json_object *o = qu_option_parse("object", vm->argv.a[i].val);
		const char *oid = qu_option_get(o, "id");
		int hit = oid && !strcmp(oid, id);
		json_object_put(o);
		if (hit)
			return i;
	}
	return -1;
}

/* The devices with an id QEMU has now. Unknown (nothing judged by it) when the answer is not
 * a whole, plausible list: a monitor that does not know qom-list, or one that lists more than
 * fit. A name QEMU could not have given (not printable, too long) is kept as it reads, and
 * then matches no -device id: the plan names it. */
static void query_peripherals(struct qu_vm *vm, struct qu_qmp *q, uint64_t deadline_us)
{
	json_object *args = json_object_new_object(), *list = NULL;
	json_object_object_add(args, "path", json_object_new_string("/machine/peripheral"));
	vm->peripherals_known = 0;
	vm->nperipherals = 0;
	if (qu_qmp_execute(q, "qom-list", args, -1, deadline_us, &list) < 0) {
		qu_err_clear();
		return;
	}
	size_t n = json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;
	int ok = json_object_is_type(list, json_type_array);
	for (size_t i = 0; ok && i < n; i++) {
		json_object *e = json_object_array_get_idx(list, i);
		const char *type = qu_json_member_str(e, "type");
		if (strncmp(type, "child<", 6))
			continue; /* "type" and other properties of the container */
		if (vm->nperipherals == QU_MAX_PERIPHERALS) {
			ok = 0;
			break;
		}
		qu_copy_printable(vm->peripherals[vm->nperipherals++], QU_MAX_DEVICE_ID, qu_json_member_str(e, "name"));
	}
	vm->peripherals_known = ok;
	json_object_put(list);
}

static int query_memdevs(struct qu_vm *vm, struct qu_qmp *q, uint64_t deadline_us)
{
	json_object *list = NULL;
	int r = qu_qmp_execute(q, "query-memdev", NULL, -1, deadline_us, &list);
	if (r < 0)
		return r;
	size_t n = json_object_array_length(list);
	for (size_t i = 0; i < n && r == 0; i++) {
		json_object *m = json_object_array_get_idx(list, i), *v;
		struct qu_ram *ram = &vm->ram[vm->nram];
		char path[128];
		if (vm->nram == QU_MAX_RAM) {
			r = qu_err(-E2BIG, "more than %d memory backends", QU_MAX_RAM);
			break;
		}
		memset(ram, 0, sizeof(*ram));
		ram->old_fd = -1;
		if (json_object_object_get_ex(m, "id", &v))
			qu_copy_printable(ram->id, sizeof(ram->id), json_object_get_string(v));
		if (json_object_object_get_ex(m, "size", &v))
			ram->size = (uint64_t)json_object_get_uint64(v);
		int has_share = json_object_object_get_ex(m, "share", &v);
		if (has_share)
			ram->share = json_object_get_boolean(v);
		snprintf(path, sizeof(path), "/objects/%s", ram->id);
		r = qom_get_string(q, path, "type", deadline_us, ram->qom_type, sizeof(ram->qom_type));
		if (r == 0 && !has_share) {
			/* query-memdev says "share" only since QEMU 6.1; the property is older. */
			char flag[32] = "";
			ram->share = qom_get_string(q, path, "share", deadline_us, flag, sizeof(flag)) == 0 &&
				     !strcmp(flag, "true");
		}
		if (r == 0 && !strcmp(ram->qom_type, "memory-backend-file"))
			r = qom_get_string(q, path, "mem-path", deadline_us, ram->backing, sizeof(ram->backing));
		if (r == 0 && !strcmp(ram->qom_type, "memory-backend-memfd")) {
			/* A QEMU built without hugetlb memfds has no such property: normal pages. */
			char flag[32] = "";
			ram->hugetlb = qom_get_string(q, path, "hugetlb", deadline_us, flag, sizeof(flag)) == 0 && !strcmp(flag, "true");
			if (ram->hugetlb && qom_get_string(q, path, "hugetlbsize", deadline_us, flag, sizeof(flag)) == 0)
				ram->hugetlb_size = strtoull(flag, NULL, 10);
		}
		ram->arg = backend_arg(vm, ram->id);
		vm->nram++;
	}
	json_object_put(list);
	return r;
}

/* The descriptor sets' members, whoever added them (-add-fd on the command line, or QMP add-fd
 * at run time, as libvirt does for hot-plugged disks): their numbers in the old QEMU are
 * QEMU's dups, not the fd= of the command line (which QEMU closed after it started). A
 * monitor that does not know the command (only a stand-in could not: QEMU has it since 1.2)
 * has no sets, unless the command line says it has. */
static int query_fdsets(struct qu_vm *vm, struct qu_qmp *q, uint64_t deadline_us)
{
	json_object *sets = NULL;
	int r = qu_qmp_execute(q, "query-fdsets", NULL, -1, deadline_us, &sets);
	if (r == -EREMOTEIO && qu_argv_find(&vm->argv, "add-fd", 0) < 0) {
		qu_debug("%s: taken as no descriptor sets", qu_err_msg());
		qu_err_clear();
		return 0;
	}
	if (r < 0)
		return r;
	qu_fdsets_read(sets, vm);
	json_object_put(sets);
	return 0;
}

static int query_qmp(struct qu_vm *vm, struct qu_qmp *q, uint64_t deadline_us)
{
	char type[160];
	int r;
	qu_qmp_version(q, &vm->ver[0], &vm->ver[1], &vm->ver[2]);
	if ((r = qu_qmp_query_string(q, "query-status", "status", deadline_us, vm->runstate,
				     sizeof(vm->runstate))) < 0)
		return r;
	json_object *mig = NULL, *st;
	if ((r = qu_qmp_execute(q, "query-migrate", NULL, -1, deadline_us, &mig)) < 0)
		return r;
	qu_copy_printable(vm->migration, sizeof(vm->migration),
			  json_object_object_get_ex(mig, "status", &st) ? json_object_get_string(st) : "none");
	/* QEMU >= 6.0 lists what blocks a migration (e.g. a device without migration support). */
	json_object *reasons;
	if (json_object_object_get_ex(mig, "blocked-reasons", &reasons))
		for (size_t i = 0; i < json_object_array_length(reasons); i++) {
			size_t at = strlen(vm->blockers);
			snprintf(vm->blockers + at, sizeof(vm->blockers) - at, "%s", i ? "; " : "");
			at = strlen(vm->blockers);
			qu_copy_printable(vm->blockers + at, sizeof(vm->blockers) - at,
					  json_object_get_string(json_object_array_get_idx(reasons, i)));
		}
	json_object_put(mig);
	json_object *kvm = NULL, *en;
	if (qu_qmp_execute(q, "query-kvm", NULL, -1, deadline_us, &kvm) == 0 &&
	    json_object_object_get_ex(kvm, "enabled", &en))
		vm->kvm = json_object_get_boolean(en);
	json_object_put(kvm);
	json_object *jobs = NULL;
	if ((r = qu_qmp_execute(q, "query-block-jobs", NULL, -1, deadline_us, &jobs)) < 0)
		return r;
	vm->block_jobs = (int)json_object_array_length(jobs);
	json_object_put(jobs);
	if ((r = qom_get_string(q, "/machine", "type", deadline_us, type, sizeof(type))) < 0)
		return r;
	/* QOM names machine classes "<type>-machine"; the command line wants "<type>". */
	size_t tl = strlen(type);
	if (tl > 8 && !strcmp(type + tl - 8, "-machine"))
		type[tl - 8] = '\0';
	snprintf(vm->machine, sizeof(vm->machine), "%s", type);
	/* Only QEMU >= 10.0 has the property. */
	if (vm->ver[0] >= 10) {
		json_object *args = json_object_new_object(), *ret = NULL;
		json_object_object_add(args, "path", json_object_new_string("/machine"));
		json_object_object_add(args, "property", json_object_new_string("aux-ram-share"));
		if (qu_qmp_execute(q, "qom-get", args, -1, deadline_us, &ret) == 0)
			vm->aux_ram_share = json_object_get_boolean(ret);
		json_object_put(ret);
	}
	query_peripherals(vm, q, deadline_us);
	/* Asked of every VM: sets added at run time are on no command line. */
	if ((r = query_fdsets(vm, q, deadline_us)) < 0)
		return r;
	return query_memdevs(vm, q, deadline_us);
}

int qu_inspect_proc(pid_t pid, const char *qmp_override, struct qu_vm *vm)
{
	int r;

	memset(vm, 0, sizeof(*vm));
	vm->pid = pid;
	vm->pin.pidfd = -1;
	/* Pinned first: everything read by PID below is this process's if it still runs at the
	 * end (checked there, and before each step that acts). */
	if ((r = qu_pin_open(pid, &vm->pin)) < 0 || (r = qu_fault(QU_FI_INSPECT_PINNED)) < 0)
		return r;
	if ((r = read_proc(vm)) < 0)
		return qu_pin_check(&vm->pin) ?: r;
	/* Once: the listeners, taps, ptys and RAM below all look their descriptors up here. */
	if ((r = qu_fdtab_read(pid, &vm->fds)) < 0)
		return qu_pin_check(&vm->pin) ?: qu_err(r, "cannot read /proc/%d/fd: %s", (int)pid, strerror(-r));
	/* What /proc said must be this process's before anyone is talked to on its behalf. */
	if ((r = qu_find_listeners(vm)) < 0 || (r = qu_find_rebound(vm)) < 0 || (r = qu_find_taps(vm)) < 0 ||
	    (r = qu_context_read(pid, &vm->ctx)) < 0 || (r = qu_pin_check(&vm->pin)) < 0)
		return qu_pin_check(&vm->pin) ?: r;
	if (qmp_override)
		snprintf(vm->qmp_path, sizeof(vm->qmp_path), "%s", qmp_override);
	else if (qu_find_qmp_path(vm, vm->qmp_path, sizeof(vm->qmp_path)) < 0)
		return qu_pin_check(&vm->pin) ?:
		       qu_err(-ENOENT, "QEMU PID %d has no QMP monitor on a UNIX socket; start it with "
			      "-qmp unix:PATH,server=on,wait=off (or -chardev socket,...,server=on with "
			      "-mon mode=control), or name the socket with --qmp", (int)pid);
	if ((r = find_listener_fds(vm)) < 0)
		return qu_pin_check(&vm->pin) ?: r;
	vm->anon_bytes = qu_proc_anon_bytes(pid);
	return 0;
}

int qu_inspect(pid_t pid, const char *qmp_override, int root_monitor, uint64_t deadline_us, struct qu_vm *vm,
	       struct qu_qmp **qmp)
{
	struct qu_qmp *q = NULL;
	int r = qu_inspect_proc(pid, qmp_override, vm);
	if (r < 0)
		return r;
	/* As the VM's user: the path is theirs to point anywhere. A libvirt VM's monitor is
	 * root's socket, which only root may connect to: connected to as root, without following
	 * a link, and talked to only once its other end proves to be this QEMU's. */
	struct qu_ident who;
	qu_ident_of(&vm->ctx, &who);
	vm->qmp_root = root_monitor;
	int fd = root_monitor ? qu_connect_root_socket(vm->qmp_path) : qu_connect_as(&who, vm->qmp_path);
	if (fd < 0 && root_monitor)
		return qu_pin_check(&vm->pin) ?: qu_err_wrap(fd, "QEMU PID %d: libvirt's monitor", (int)pid);
	if (fd < 0)
		return qu_pin_check(&vm->pin) ?:
		       qu_err(fd, "QEMU PID %d: cannot connect to QMP socket %s as uid %u (the VM's user): %s", (int)pid,
			      vm->qmp_path, (unsigned)vm->ctx.uid, strerror(-fd));
	int peer_fd = root_monitor ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
	if ((r = qu_qmp_connected(fd, vm->qmp_path, deadline_us, &q)) < 0) {
		if (peer_fd >= 0)
			close(peer_fd);
		return qu_pin_check(&vm->pin) ?: qu_err_wrap(r, "QEMU PID %d", (int)pid);
	}
	/* After the greeting: QEMU has accepted, so the other end is among its descriptors. */
	if (root_monitor) {
		r = peer_fd < 0 ? qu_err(-errno, "dup: %s", strerror(errno)) : qu_socket_peer_of(peer_fd, pid);
		if (peer_fd >= 0)
			close(peer_fd);
		if (r < 0) {
			qu_qmp_close(q);
			return qu_pin_check(&vm->pin) ?: qu_err_wrap(r, "QEMU PID %d", (int)pid);
		}
	}
	if ((r = query_qmp(vm, q, deadline_us)) < 0 || (r = qu_ram_find_fds(vm)) < 0 ||
	    (r = qu_find_ptys(vm, q, deadline_us)) < 0 || (r = qu_pin_check(&vm->pin)) < 0) {
		qu_qmp_close(q);
		return qu_pin_check(&vm->pin) ?: r;
	}
	*qmp = q;
	return 0;
}
