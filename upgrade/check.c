#include "qemu-upgrade.h"
#include "remote/client.h"
#include "remote/ssh/uri.h"
#include "remote/tcp/transport.h"
#include "qemu-integration/binary.h"
#include "qemu-integration/qmp.h"
#include "upgrade/clock.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/fdpass/scm.h"
#include "upgrade/io.h"
#include "upgrade/journal.h"
#include "upgrade/keeppid.h"
#include "upgrade/launcher.h"
#include "upgrade/log.h"
#include "upgrade/sandbox.h"
#include "upgrade/stream.h"
#include "upgrade/testhooks.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

struct report {
	json_object *items;
	int json, missing;
	FILE *out;
};

/* required: the zero-copy upgrade cannot work without it. */
static void item(struct report *rep, const char *name, int ok, int required, const char *detail,
		 const char *why)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "ok", json_object_new_boolean(ok));
	json_object_object_add(o, "required", json_object_new_boolean(required));
	json_object_object_add(o, "detail", json_object_new_string(detail));
	json_object_object_add(o, "why", json_object_new_string(why));
	json_object_array_add(rep->items, o);
	rep->missing += required && !ok;
	if (!rep->json)
		fprintf(rep->out, "%-4s %-26s %-34s %s\n", ok ? "yes" : "NO", name, detail, why);
}

static void check_pidfd(struct report *rep)
{
	int pfd = qu_pidfd_open(getpid());
	item(rep, "pidfd_open", pfd >= 0, 1, pfd >= 0 ? "works" : strerror(-pfd),
	     "watch QEMUs that are not our children");
	int fd = pfd >= 0 ? qu_pidfd_getfd(pfd, 0) : -ENOSYS;
	item(rep, "pidfd_getfd", fd >= 0, 1, fd >= 0 ? "works" : strerror(-fd),
	     "take guest RAM, taps and sockets out of the running QEMU");
	if (fd >= 0)
		close(fd);
	if (pfd >= 0)
		close(pfd);
}

static void check_memfd_scm(struct report *rep)
{
	int m = memfd_create("qemu-upgrade-check", MFD_CLOEXEC);
	item(rep, "memfd_create", m >= 0, 0, m >= 0 ? "works" : strerror(errno),
	     "guest RAM that can be handed over (memory-backend-memfd)");
	int sv[2], got[1], ok = 0;
	size_t n = 0;
	if (m >= 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
		char c = 'x';
		ok = qu_scm_send(sv[0], &c, 1, &m, 1) == 0 && qu_scm_recv(sv[1], &c, 1, got, &n, 1) == 1 && n == 1;
		if (n)
			close(got[0]);
		close(sv[0]);
		close(sv[1]);
	}
	item(rep, "SCM_RIGHTS", ok, 1, ok ? "works" : "descriptors do not pass",
	     "descriptors ride the handover stream and QMP getfd");
	if (m >= 0)
		close(m);
}

static void check_uffd(struct report *rep)
{
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int ok = fd >= 0 && ioctl((int)fd, UFFDIO_API, &api) == 0;
	char detail[64];
	snprintf(detail, sizeof(detail), "%s%s", ok ? "works" : "not available",
		 ok && (api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP) ? ", write-protect too" : "");
	item(rep, "userfaultfd", ok, 0, detail, "postcopy: copying RAM with bounded memory (copy path)");
	if (fd >= 0)
		close((int)fd);
}

static void check_splice(struct report *rep)
{
	int p[2], ok = 0;
	if (pipe2(p, O_CLOEXEC) == 0) {
		static char page[4096] __attribute__((aligned(4096)));
		struct iovec iov = { .iov_base = page, .iov_len = sizeof(page) };
		ok = vmsplice(p[1], &iov, 1, 0) == (ssize_t)sizeof(page);
		close(p[0]);
		close(p[1]);
	}
	item(rep, "splice/vmsplice", ok, 0, ok ? "works" : "not available",
	     "moving pages to sockets without copying (remote copy)");
}

static void check_devices(struct report *rep)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	item(rep, "/dev/net/tun", fd >= 0, 0, fd >= 0 ? "opens" : strerror(errno),
	     "tap networking (carried by descriptor; checked by tests)");
	if (fd >= 0)
		close(fd);
	fd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);
	item(rep, "/dev/vhost-net", fd >= 0, 0, fd >= 0 ? "opens" : strerror(errno),
	     "vhost-net taps: the tool opens one per queue for the new QEMU");
	if (fd >= 0)
		close(fd);
	pid_t pid = fork();
	if (pid == 0)
		_exit(unshare(CLONE_NEWNET) == 0 ? 0 : 1);
	int st = 1;
	if (pid > 0)
		waitpid(pid, &st, 0);
	item(rep, "network namespaces", pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, 0,
	     st == 0 ? "can create" : "cannot create", "the new QEMU joins the VM's namespace (setns)");
	int v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0 ||
		 access("/sys/fs/cgroup/unified/cgroup.procs", F_OK) == 0;
	int v1 = access("/sys/fs/cgroup/memory/cgroup.procs", F_OK) == 0 ||
		 access("/sys/fs/cgroup/cpu/cgroup.procs", F_OK) == 0;
	char detail[48];
	snprintf(detail, sizeof(detail), "%s%s%s", v1 ? "v1" : "", v1 && v2 ? " and " : "", v2 ? "v2" : "");
	item(rep, "cgroups", v1 || v2, 0, v1 || v2 ? detail : "none mounted",
	     "the new QEMU joins the old one's cgroups");
	char probe[PATH_MAX];
	snprintf(probe, sizeof(probe), "%s/.check", qu_state_dir());
	mkdir(qu_state_dir(), 0700);
	fd = open(probe, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	snprintf(detail, sizeof(detail), "%.40s", qu_state_dir());
	item(rep, "state directory writable", fd >= 0, 1, detail, "the journal that makes upgrades safe");
	if (fd >= 0) {
		close(fd);
		unlink(probe);
	}
}

/* Which LSM labels processes here, from securityfs's list or, without it, from what a
 * process's label files say. */
static void lsm_here(char *out, size_t len)
{
	char *text = NULL;
	out[0] = '\0';
	if (qu_read_file("/sys/kernel/security/lsm", &text, NULL) == 0) {
		int aa = strstr(text, "apparmor") != NULL, se = strstr(text, "selinux") != NULL;
		snprintf(out, len, "%s%s%s", aa ? "AppArmor" : "", aa && se ? ", " : "", se ? "SELinux" : "");
		free(text);
		return;
	}
	if (access("/proc/self/attr/apparmor/current", R_OK) == 0 && qu_read_file("/proc/self/attr/apparmor/current", &text, NULL) == 0)
		snprintf(out, len, "AppArmor");
	else if (qu_read_file("/proc/self/attr/current", &text, NULL) == 0)
		snprintf(out, len, "%s", strstr(text, " (") || !strncmp(text, "unconfined", 10) ? "AppArmor" : "SELinux");
	free(text);
}

/* The confinement a VM's QEMU may run under, and what becomes of each (docs/security.md). */
static void check_confinement(struct report *rep)
{
	char lsm[64], detail[96];
	int nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) >= 0;
	item(rep, "no_new_privs", nnp, 0, nnp ? "carried" : "not available", "the new QEMU gets it when the old one had it");
	pid_t pid = fork();
	if (pid == 0)
		_exit(unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER) == 0 ? 0 : 1);
	int st = 1;
	if (pid > 0)
		waitpid(pid, &st, 0);
	int ns = pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	item(rep, "namespaces", ns, 0, ns ? "carried (setns)" : "cannot create: not checked",
	     "mnt, user (with its own IDs), pid, time, ipc, uts, cgroup, net; root and working directory");
	lsm_here(lsm, sizeof(lsm));
	snprintf(detail, sizeof(detail), "%s", lsm[0] ? lsm : "none here");
	item(rep, "LSM label", 1, 0, detail, lsm[0] ? "carried by an exec transition (attr/exec): never unconfined"
						   : "no AppArmor or SELinux: no labels to carry");
	item(rep, "seccomp", 1, 0, "QEMU's own -sandbox: carried",
	     "it installs it again itself; filters a VM's starter installed cannot be read: such VMs are refused");
	item(rep, "capabilities", 1, 0, "carried", "sets and bounding set as the old QEMU had them; root's narrowed to what it held");
	item(rep, "Landlock", 1, 0, "not visible", "a domain cannot be seen from another process: not carried (QEMU uses none)");
}

/* What the tool does to itself (docs/security.md). */
static void check_self(struct report *rep)
{
	int filt = qu_sandbox_available();
	item(rep, "seccomp filters", filt, 0, filt ? "active where bytes are untrusted" : "not available here",
	     "the agent's handshake runs as nobody under an allow list (libseccomp)");
	char why[640];
	snprintf(why, sizeof(why), "after inspection the upgrade keeps %s, and what the new QEMU inherits",
		 qu_privs_kept_names());
	item(rep, "capabilities dropped", geteuid() == 0, 0, geteuid() == 0 ? "after inspection" : "not root: none held", why);
	if (qu_test_hooks_enabled())
		item(rep, "test hooks", 0, 0, "ON: a build for tests", "QEMU_UPGRADE_FAULT and the rest are honoured: never install this build");
}

/* The TLS agent (--remote HOST, `agent --listen`) needs certificates; qemu-img makes the images
 * that --copy-storage copies into (on the receiving host). */
static void check_remote(struct report *rep)
{
	const char *files[] = { "ca-cert.pem", "client-cert.pem", "client-key.pem", "server-cert.pem", "server-key.pem" };
	char path[128], detail[64] = "";
	int have = 0;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), QU_PKI_DIR "/%s", files[i]);
		if (access(path, F_OK) == 0)
			have |= 1 << i;
	}
	snprintf(detail, sizeof(detail), "%s%s%s", have & 1 ? "CA" : "no CA", have & 6 ? ", tool's" : "",
		 have & 24 ? ", agent's" : "");
	item(rep, "TLS certificates", (have & 1) && (have & 6 || have & 24), 0, detail,
	     "only the TLS agent (--remote HOST, `agent --listen`): " QU_PKI_DIR "/ca-cert.pem, client-*.pem (tool), "
	     "server-*.pem (agent); ssh:// needs none");
	int img = access("/usr/bin/qemu-img", X_OK) == 0;
	item(rep, "qemu-img", img, 0, img ? "/usr/bin/qemu-img" : "not installed",
	     "an agent host makes the images --copy-storage copies into");
}

/* Starts the binary with -M none and a private monitor, and asks it about migration. */
static void check_binary(struct report *rep, const char *path)
{
	struct qu_binary b;
	uint64_t deadline = qu_now_us() + 20000000u;
	char detail[128];
	int r = qu_binary_probe(path, (uid_t)-1, QU_NOBODY, QU_NOBODY, deadline, &b);
	item(rep, "QEMU binary", r == 0, 1, r == 0 ? b.version_line + 22 : qu_err_msg(), path);
	if (r < 0)
		return;
	int old_memfd = b.ver[0] < 8 || (b.ver[0] == 8 && b.ver[1] < 1);
	item(rep, "memfd RAM handed over", old_memfd, 0, old_memfd ? "yes (QEMU < 8.1)" : "no: 8.1+ sends it",
	     "VMs of this QEMU with memfd RAM upgrade zero-copy; else cpr-transfer, a file backend, or one copy");
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	char *argv[] = { (char *)path, (char *)"-M", (char *)"none", (char *)"-nodefaults", (char *)"-display",
			 (char *)"none", (char *)"-S", (char *)"-chardev", (char *)"socket,id=c,fd=3",
			 (char *)"-mon", (char *)"chardev=c,mode=control", NULL };
	/* The file probed, by descriptor, with the fixed environment. */
	int prog = qu_binary_reopen(&b);
	if (prog < 0) {
		close(sv[0]);
		close(sv[1]);
		return;
	}
	struct qu_launch_fd fds[2] = { { sv[1], 3, QU_FD_CONTROL, "monitor", NULL }, { prog, 0, QU_FD_PROGRAM, "program", NULL } };
	struct qu_launch spec = { .argv = argv, .envp = (char **)qu_clean_env, .fds = fds, .nfds = 2 };
	pid_t pid = 0;
	struct qu_qmp *q = NULL;
	json_object *caps = NULL;
	r = qu_launch_local(&spec, deadline, &pid);
	close(sv[1]);
	close(prog);
	if (r == 0)
		r = qu_qmp_attach(sv[0], deadline, &q);
	else
		close(sv[0]);
	if (r == 0)
		r = qu_qmp_execute(q, "query-migrate-capabilities", NULL, -1, deadline, &caps);
	const char *want[3] = { "x-ignore-shared", "postcopy-ram", "release-ram" };
	const char *why[3] = { "skip shared RAM: the zero-copy handover", "copy path with bounded memory",
			       "free source pages as they move" };
	for (int i = 0; i < 3; i++) {
		int have = 0;
		for (size_t k = 0; caps && k < json_object_array_length(caps); k++) {
			json_object *c = json_object_array_get_idx(caps, k), *n;
			have |= json_object_object_get_ex(c, "capability", &n) && !strcmp(qu_json_str(n), want[i]);
		}
		item(rep, want[i], have, i == 0, r == 0 ? (have ? "supported" : "missing") : qu_err_msg(), why[i]);
	}
	int cpr = b.ver[0] >= 10;
	snprintf(detail, sizeof(detail), "%s", cpr ? "offered (QEMU >= 10.0)" : "no (QEMU < 10.0)");
	item(rep, "cpr-transfer", cpr, 0, detail,
	     "memfd RAM of VMs started with -machine aux-ram-share=on handed over by QEMU itself (both >= 10.0)");
	int exec = b.ver[0] > QU_CPR_EXEC_MAJOR || (b.ver[0] == QU_CPR_EXEC_MAJOR && b.ver[1] >= QU_CPR_EXEC_MINOR);
	snprintf(detail, sizeof(detail), "%s (QEMU %s %d.%d)", exec ? "offered" : "no", exec ? ">=" : "<",
		 QU_CPR_EXEC_MAJOR, QU_CPR_EXEC_MINOR);
	item(rep, "cpr-exec (--keep-pid)", exec, 0, detail,
	     "the VM keeps its PID across the upgrade, for managers that watch it (both sides; docs/cpr-exec.md)");
	json_object_put(caps);
	if (q) {
		qu_qmp_execute(q, "quit", NULL, -1, qu_now_us() + 2000000u, NULL);
		qu_qmp_close(q);
	}
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

/* The other host, through its agent: reachable (over ssh, or TLS), and what the
 * QEMU there is. */
static void check_agent(struct report *rep, const char *host, const char *pki_dir, const char *binary)
{
	struct qu_remote *r = NULL;
	char detail[48], why[256];
	uint64_t deadline = qu_now_us() + 10000000u;
	int ok = qu_remote_connect(host, pki_dir, deadline, &r) == 0;
	snprintf(detail, sizeof(detail), "%.47s", !ok ? "NOT reached" : r->ssh ? "reachable over ssh" : "reachable over TLS");
	snprintf(why, sizeof(why), "%s", ok ? "--remote can move VMs there" : qu_err_msg());
	item(rep, "agent on the other host", ok, 1, detail, why);
	if (!ok)
		return;
	struct qu_binary *b = calloc(1, sizeof(*b));
	const char *path = binary ? binary : "/usr/bin/qemu-system-x86_64";
	int has = 0;
	ok = b && qu_remote_probe(r, path, "q35", deadline, b, &has) == 0;
	if (ok)
		snprintf(detail, sizeof(detail), "QEMU %d.%d.%d", b->ver[0], b->ver[1], b->ver[2]);
	else
		snprintf(detail, sizeof(detail), "not usable");
	snprintf(why, sizeof(why), "%s there%s%s", path, ok ? ": the new QEMU" : ": ", ok ? "" : qu_err_msg());
	item(rep, "QEMU on the other host", ok, 1, detail, why);
	if (ok && r->mem_available >= 0) {
		snprintf(detail, sizeof(detail), "%lld MiB available", r->mem_available >> 20);
		item(rep, "memory on the other host", 1, 0, detail, "a moved guest's RAM is copied there");
	}
	free(b);
	qu_remote_close(r);
}

int qu_check(const char *binary, const char *remote, const char *pki_dir, unsigned flags, FILE *out)
{
	if (flags & ~QU_OUT_JSON) {
		qu_err(-EINVAL, "unknown flags 0x%x", flags & ~QU_OUT_JSON);
		return -1;
	}
	if (!out) {
		qu_err(-EINVAL, "no stream to print to");
		return -1;
	}
	if (qu_ssh_uri_is(remote)) {
		/* Read before anything runs: a hostile URI never reaches ssh. */
		struct qu_ssh_uri u;
		if (qu_ssh_uri_parse(remote, &u) < 0)
			return -1;
		if (pki_dir) {
			qu_err(-EINVAL, "--pki-dir names the TLS agent's certificates; over ssh:// ssh's own keys authenticate");
			return -1;
		}
	}
	int json = !!(flags & QU_OUT_JSON);
	struct report rep = { .items = json_object_new_array(), .json = json, .out = out };
	if (!json)
		fprintf(out, "%-4s %-26s %-34s %s\n", "", "FEATURE", "HERE", "WHY IT MATTERS");
	check_pidfd(&rep);
	check_memfd_scm(&rep);
	check_uffd(&rep);
	check_splice(&rep);
	check_devices(&rep);
	check_confinement(&rep);
	check_self(&rep);
	check_remote(&rep);
	if (remote)
		check_agent(&rep, remote, pki_dir, binary);
	else if (binary)
		check_binary(&rep, binary);
	if (json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "result", json_object_new_string(rep.missing ? "missing" : "ok"));
		json_object_object_add(o, "checks", rep.items);
		fprintf(out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	} else {
		fprintf(out, "%s\n", rep.missing ? "Some required features are missing: qemu-upgrade cannot work here."
						  : "Everything the zero-copy upgrade needs is here.");
		json_object_put(rep.items);
	}
	return rep.missing ? 1 : 0;
}
