/* The QMP client (qemu-integration/qmp.h) against a real QEMU (-M none, no guest), and against
 * peers that are not QEMU: scripted ones on a socketpair. */
#include "tests/unit/unit.h"
#include "qemu-integration/qmp.h"
#include "upgrade/fdpass/pidfd.h"

#include <json-c/json.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define QEMU "/usr/bin/qemu-system-x86_64"

struct fixture {
	char dir[64];
	char sock[128];
	char log[128];
	pid_t pid;
	struct qu_qmp *q;
};

/* ---- a real QEMU ---- */

static int stop_qemu(void **state);

static int start_qemu_(void **state);
static int start_qemu(void **state)
{
	/* cmocka does not run the teardown when the setup fails: clean up here. */
	int r = start_qemu_(state);
	if (r < 0) {
		stop_qemu(state);
		*state = NULL;
	}
	return r;
}

static int start_qemu_(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char spec[192];
	if (!f)
		return -1;
	*state = f;
	f->pid = -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/qu-unit-qmp-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->sock, sizeof(f->sock), "%s/q.sock", f->dir);
	snprintf(f->log, sizeof(f->log), "%s/qemu.log", f->dir);
	snprintf(spec, sizeof(spec), "unix:%s,server=on,wait=off", f->sock);
	char *argv[] = { QEMU, "-M", "none", "-display", "none", "-nodefaults", "-qmp", spec, NULL };
	fflush(stdout);
	f->pid = fork();
	if (f->pid < 0)
		return -1;
	if (f->pid == 0) {
		int nul = open("/dev/null", O_RDONLY), log = open(f->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (nul < 0 || log < 0 || dup2(nul, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0)
			_exit(126);
		execv(QEMU, argv);
		_exit(127);
	}
	/* Wait for the socket: connect until it answers, unless QEMU died. */
	uint64_t deadline = deadline_ms(20000);
	int protos = 0;
	for (;;) {
		int st;
		int r = qu_qmp_connect(f->sock, deadline_ms(10000), &f->q);
		if (r == 0)
			return 0;
		/* Seen once in hundreds of starts: a client that connects while QEMU is still
		 * starting got a first message that was not the greeting (an event, presumably
		 * RESUME from vm_start racing the monitor's I/O thread). Say so and connect again. */
		if (r == -EPROTO && ++protos <= 2) {
			fprintf(stdout, "# connecting to a starting QEMU: %s; again\n", qu_err_msg());
			continue;
		}
		if (waitpid(f->pid, &st, WNOHANG) == f->pid) {
			f->pid = -1;
			fprintf(stdout, "# QEMU exited early (status 0x%x); see %s\n", st, f->log);
			return -1;
		}
		if ((r != -ENOENT && r != -ECONNREFUSED) || qu_now_us() > deadline) {
			fprintf(stdout, "# cannot connect to QEMU's QMP: %s\n", qu_err_msg());
			return -1;
		}
		usleep(20000);
	}
}

static int stop_qemu(void **state)
{
	struct fixture *f = *state;
	if (!f)
		return 0;
	qu_qmp_close(f->q);
	if (f->pid > 0) {
		kill(f->pid, SIGKILL);
		waitpid(f->pid, NULL, 0);
	}
	if (f->dir[0]) {
		unlink(f->sock);
		unlink(f->log);
		rmdir(f->dir);
	}
	free(f);
	return 0;
}

#define FIX(state) ((struct fixture *)*(state))

/* Waits for the QEMU of f to exit by itself; 0 when it did. */
static int wait_qemu_exit(struct fixture *f, unsigned ms)
{
	uint64_t deadline = deadline_ms(ms);
	while (qu_now_us() < deadline) {
		int st;
		if (waitpid(f->pid, &st, WNOHANG) == f->pid) {
			f->pid = -1;
			return 0;
		}
		usleep(10000);
	}
	return -1;
}

static void greeting_version(void **state)
{
	struct fixture *f = FIX(state);
	int maj = -1, min = -1, mic = -1, vmaj = -2, vmin = -2, vmic = -2;
	qu_qmp_version(f->q, &maj, &min, &mic);
	assert_int_equal(maj, 7);
	/* The same as the binary says of itself. */
	FILE *p = popen(QEMU " --version", "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "QEMU emulator version %d.%d.%d", &vmaj, &vmin, &vmic), 3);
	pclose(p);
	assert_int_equal(min, vmin);
	assert_int_equal(mic, vmic);
	assert_int_equal(maj, vmaj);
}

static void query_status_running(void **state)
{
	struct fixture *f = FIX(state);
	char status[32] = "";
	/* -M none without -S runs (there is nothing to run, but the run state is "running"). */
	assert_int_equal(qu_qmp_query_string(f->q, "query-status", "status", deadline_ms(5000), status,
					     sizeof(status)), 0);
	assert_string_equal(status, "running");
}

static void execute_returns_value(void **state)
{
	struct fixture *f = FIX(state);
	json_object *ret = NULL, *qemu, *major;
	assert_int_equal(qu_qmp_execute(f->q, "query-version", NULL, -1, deadline_ms(5000), &ret), 0);
	assert_non_null(ret);
	assert_true(json_object_object_get_ex(ret, "qemu", &qemu));
	assert_true(json_object_object_get_ex(qemu, "major", &major));
	assert_int_equal(json_object_get_int(major), 7);
	json_object_put(ret);
	/* Without ret the answer is dropped. */
	assert_int_equal(qu_qmp_execute(f->q, "query-version", NULL, -1, deadline_ms(5000), NULL), 0);
}

static void execute_with_arguments(void **state)
{
	struct fixture *f = FIX(state);
	json_object *args = json_object_new_object(), *ret = NULL;
	json_object_object_add(args, "path", json_object_new_string("/machine"));
	json_object_object_add(args, "property", json_object_new_string("type"));
	assert_int_equal(qu_qmp_execute(f->q, "qom-get", args, -1, deadline_ms(5000), &ret), 0);
	assert_non_null(ret);
	assert_string_equal(json_object_get_string(ret), "none-machine");
	json_object_put(ret);
}

static void query_string_missing_member(void **state)
{
	struct fixture *f = FIX(state);
	char buf[32];
	assert_int_equal(qu_qmp_query_string(f->q, "query-status", "no-such-member", deadline_ms(5000), buf,
					     sizeof(buf)), -EPROTO);
	assert_non_null(strstr(qu_err_msg(), "no-such-member"));
}

static void unknown_command(void **state)
{
	struct fixture *f = FIX(state);
	json_object *ret = (json_object *)0x1;
	assert_int_equal(qu_qmp_execute(f->q, "no-such-command", NULL, -1, deadline_ms(5000), &ret),
			 -EREMOTEIO);
	assert_non_null(strstr(qu_err_msg(), "no-such-command"));
	assert_non_null(strstr(qu_err_msg(), "has not been found")); /* QEMU's own words */
	assert_int_equal(qu_err_errno(), EREMOTEIO);
	/* The connection is still good. */
	char status[32];
	assert_int_equal(qu_qmp_query_string(f->q, "query-status", "status", deadline_ms(5000), status,
					     sizeof(status)), 0);
}

static void bad_arguments(void **state)
{
	struct fixture *f = FIX(state);
	json_object *args = json_object_new_object();
	json_object_object_add(args, "bogus", json_object_new_int(1));
	assert_int_equal(qu_qmp_execute(f->q, "query-status", args, -1, deadline_ms(5000), NULL), -EREMOTEIO);
	assert_non_null(strstr(qu_err_msg(), "query-status"));
}

/* Does process pid hold a descriptor for the inode of fd? */
static int process_holds(pid_t pid, int fd)
{
	char dir[64], path[320];
	struct stat want, st;
	int found = 0;
	assert_int_equal(fstat(fd, &want), 0);
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dir);
	assert_non_null(d);
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) == 0 && st.st_dev == want.st_dev && st.st_ino == want.st_ino)
			found = 1;
	}
	closedir(d);
	return found;
}

static json_object *fdname_args(const char *name)
{
	json_object *a = json_object_new_object();
	json_object_object_add(a, "fdname", json_object_new_string(name));
	return a;
}

static void getfd_and_closefd(void **state)
{
	struct fixture *f = FIX(state);
	int p[2];
	char c;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_false(process_holds(f->pid, p[1]));
	assert_int_equal(qu_qmp_execute(f->q, "getfd", fdname_args("qu-unit"), p[1], deadline_ms(5000), NULL), 0);
	assert_true(process_holds(f->pid, p[1])); /* QEMU has it now */
	assert_int_equal(qu_qmp_execute(f->q, "closefd", fdname_args("qu-unit"), -1, deadline_ms(5000), NULL), 0);
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 0); /* EOF: QEMU's copy is closed too */
	close(p[0]);
	/* Closing it again is QEMU's error. */
	assert_int_equal(qu_qmp_execute(f->q, "closefd", fdname_args("qu-unit"), -1, deadline_ms(5000), NULL),
			 -EREMOTEIO);
	assert_non_null(strstr(qu_err_msg(), "qu-unit"));
}

static void getfd_without_descriptor(void **state)
{
	struct fixture *f = FIX(state);
	assert_int_equal(qu_qmp_execute(f->q, "getfd", fdname_args("none"), -1, deadline_ms(5000), NULL),
			 -EREMOTEIO);
	assert_non_null(strstr(qu_err_msg(), "SCM_RIGHTS"));
}

static void wait_event_times_out(void **state)
{
	struct fixture *f = FIX(state);
	uint64_t t0 = qu_now_us();
	json_object *data = (json_object *)0x1;
	assert_int_equal(qu_qmp_wait_event(f->q, "MIGRATION", NULL, -1, t0 + 200000, &data), -ETIMEDOUT);
	uint64_t ms = (qu_now_us() - t0) / 1000;
	assert_true(ms >= 195);
	assert_true(ms < 2000);
	assert_non_null(strstr(qu_err_msg(), "MIGRATION"));
	assert_int_equal(qu_err_errno(), ETIMEDOUT);
}

static void events_during_command_are_kept(void **state)
{
	struct fixture *f = FIX(state);
	json_object *data = NULL;
	char status[32];
	/* QEMU sends STOP before the answer to "stop": the client keeps it for later. */
	assert_int_equal(qu_qmp_execute(f->q, "stop", NULL, -1, deadline_ms(5000), NULL), 0);
	assert_int_equal(qu_qmp_wait_event(f->q, "STOP", NULL, -1, qu_now_us(), &data), 0);
	assert_null(data); /* STOP has no data */
	assert_int_equal(qu_qmp_query_string(f->q, "query-status", "status", deadline_ms(5000), status,
					     sizeof(status)), 0);
	assert_string_equal(status, "paused");
	assert_int_equal(qu_qmp_execute(f->q, "cont", NULL, -1, deadline_ms(5000), NULL), 0);
	assert_int_equal(qu_qmp_wait_event(f->q, "RESUME", NULL, -1, deadline_ms(5000), NULL), 0);
	/* Taken once: a second wait for the same event finds nothing. */
	assert_int_equal(qu_qmp_wait_event(f->q, "STOP", NULL, -1, deadline_ms(50), NULL), -ETIMEDOUT);
}

static void wait_event_watch_fd(void **state)
{
	struct fixture *f = FIX(state);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		usleep(100000);
		_exit(0);
	}
	int pidfd = qu_pidfd_open(child);
	assert_true(pidfd >= 0);
	uint64_t t0 = qu_now_us();
	assert_int_equal(qu_qmp_wait_event(f->q, "MIGRATION", NULL, pidfd, deadline_ms(5000), NULL), -ECHILD);
	assert_true(qu_now_us() - t0 < 4000000);
	close(pidfd);
	assert_int_equal(waitpid(child, NULL, 0), child);
}

static void quit_then_command_fails(void **state)
{
	struct fixture *f = FIX(state);
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	assert_int_equal(sigaction(SIGPIPE, &ign, &old), 0);
	assert_int_equal(qu_qmp_execute(f->q, "quit", NULL, -1, deadline_ms(5000), NULL), 0);
	assert_int_equal(wait_qemu_exit(f, 10000), 0);
	int r = qu_qmp_execute(f->q, "query-status", NULL, -1, deadline_ms(5000), NULL);
	sigaction(SIGPIPE, &old, NULL);
	if (r != -ECONNRESET && r != -EPIPE)
		fail_msg("after quit: %d (%s), wanted -ECONNRESET or -EPIPE", r, qu_err_msg());
	assert_non_null(strstr(qu_err_msg(), "query-status"));
}

static void quit_then_command_answers_connection_closed(void **state)
{
	struct fixture *f = FIX(state);
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	assert_int_equal(sigaction(SIGPIPE, &ign, &old), 0);
	assert_int_equal(qu_qmp_execute(f->q, "quit", NULL, -1, deadline_ms(5000), NULL), 0);
	/* Right away, QEMU possibly not gone yet: the write may still succeed and the read then
	 * finds the end of the stream. */
	int r = qu_qmp_execute(f->q, "query-status", NULL, -1, deadline_ms(5000), NULL);
	sigaction(SIGPIPE, &old, NULL);
	if (r != -ECONNRESET && r != -EPIPE)
		fail_msg("after quit: %d (%s), wanted -ECONNRESET or -EPIPE", r, qu_err_msg());
	assert_int_equal(wait_qemu_exit(f, 10000), 0);
}

static volatile sig_atomic_t sigpipes;
static void count_sigpipe(int sig) { sigpipes++; }

static void command_to_exited_qemu_raises_no_sigpipe(void **state)
{
	/* A library must not kill its caller with SIGPIPE when the monitor went away (a QEMU that
	 * crashed mid-upgrade, say): the caller should get -EPIPE. Counted with a handler, so a
	 * SIGPIPE shows as a failure here instead of killing the test program. */
	struct fixture *f = FIX(state);
	struct sigaction count = { .sa_handler = count_sigpipe }, old;
	assert_int_equal(qu_qmp_execute(f->q, "quit", NULL, -1, deadline_ms(5000), NULL), 0);
	assert_int_equal(wait_qemu_exit(f, 10000), 0);
	sigpipes = 0;
	assert_int_equal(sigaction(SIGPIPE, &count, &old), 0);
	int r = qu_qmp_execute(f->q, "query-status", NULL, -1, deadline_ms(5000), NULL);
	sigaction(SIGPIPE, &old, NULL);
	assert_true(r == -EPIPE || r == -ECONNRESET);
	if (sigpipes)
		fail_msg("qu_qmp_execute raised SIGPIPE (%d) writing to a closed monitor: a process with "
			 "default SIGPIPE handling is killed", (int)sigpipes);
}

/* ---- peers that are not QEMU ---- */

/* Reads the next JSON value from sock (QMP commands need not end with a newline). */
static json_object *read_command(int sock)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *o = NULL;
	char c;
	while (tok && !o && read(sock, &c, 1) == 1) {
		o = json_tokener_parse_ex(tok, &c, 1);
		if (!o && json_tokener_get_error(tok) != json_tokener_continue)
			break;
	}
	json_tokener_free(tok);
	return o;
}

/* A scripted monitor in a child process: writes `hello`, then for each command it reads, the
 * next entry of `replies` with "ID" replaced by the command's id (an entry may hold several
 * messages). An entry "CLOSE" closes the connection. */
static pid_t scripted_peer(const int s[2], const char *hello, const char *const *replies)
{
	int sock = s[1];
	fflush(stdout);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid)
		return pid;
	close(s[0]); /* or the end of the stream would never come */
	if (hello && write(sock, hello, strlen(hello)) < 0)
		_exit(3);
	for (const char *const *r = replies; r && *r; r++) {
		if (!strcmp(*r, "CLOSE"))
			_exit(0);
		json_object *cmd = read_command(sock), *id;
		char ids[32] = "null", out[4096];
		if (!cmd)
			_exit(4);
		if (json_object_object_get_ex(cmd, "id", &id))
			snprintf(ids, sizeof(ids), "%s", json_object_to_json_string(id));
		size_t o = 0;
		for (const char *c = *r; *c && o + 40 < sizeof(out);) {
			if (!strncmp(c, "ID", 2)) {
				o += (size_t)snprintf(out + o, sizeof(out) - o, "%s", ids);
				c += 2;
			} else {
				out[o++] = *c++;
			}
		}
		if (write(sock, out, o) != (ssize_t)o)
			_exit(5);
	}
	/* Then stay until the other side closes. */
	char c;
	while (read(sock, &c, 1) > 0)
		;
	_exit(0);
}

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 3, \"minor\": 1, \"major\": 8}, " \
		 "\"package\": \"\"}, \"capabilities\": []}}\n"
#define OK_REPLY "{\"return\": {}, \"id\": ID}\n"

static int peer_pair(int s[2])
{
	return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s);
}

static void reap_peer(pid_t pid)
{
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void attach_hello_peer_is_eproto(void **state)
{
	int s[2];
	struct qu_qmp *q = NULL;
	assert_int_equal(peer_pair(s), 0);
	assert_int_equal(write(s[1], "hello\n", 6), 6);
	assert_int_equal(qu_qmp_attach(s[0], deadline_ms(2000), &q), -EPROTO);
	assert_null(q);
	assert_false(fd_is_open(s[0])); /* attach owns the descriptor, closed on failure too */
	assert_non_null(strstr(qu_err_msg(), "JSON"));
	close(s[1]);
}

static void attach_non_greeting_object_is_eproto(void **state)
{
	int s[2];
	struct qu_qmp *q = NULL;
	assert_int_equal(peer_pair(s), 0);
	const char *msg = "{\"hello\": \"world\"}\n";
	assert_int_equal(write(s[1], msg, strlen(msg)), (ssize_t)strlen(msg));
	assert_int_equal(qu_qmp_attach(s[0], deadline_ms(2000), &q), -EPROTO);
	assert_non_null(strstr(qu_err_msg(), "greeting"));
	close(s[1]);
}

static void attach_json_array_is_eproto(void **state)
{
	int s[2];
	struct qu_qmp *q = NULL;
	assert_int_equal(peer_pair(s), 0);
	assert_int_equal(write(s[1], "[1, 2]\n", 7), 7);
	assert_int_equal(qu_qmp_attach(s[0], deadline_ms(2000), &q), -EPROTO);
	close(s[1]);
}

static void attach_peer_closes_is_econnreset(void **state)
{
	int s[2];
	struct qu_qmp *q = NULL;
	assert_int_equal(peer_pair(s), 0);
	assert_int_equal(write(s[1], "{\"QMP\"", 6), 6); /* half a greeting, then gone */
	close(s[1]);
	assert_int_equal(qu_qmp_attach(s[0], deadline_ms(2000), &q), -ECONNRESET);
}

static void attach_silent_peer_times_out(void **state)
{
	int s[2];
	struct qu_qmp *q = NULL;
	assert_int_equal(peer_pair(s), 0);
	uint64_t t0 = qu_now_us();
	assert_int_equal(qu_qmp_attach(s[0], deadline_ms(150), &q), -ETIMEDOUT);
	assert_true(qu_now_us() - t0 >= 140000);
	close(s[1]);
}

static void attach_capabilities_refused(void **state)
{
	int s[2];
	struct qu_qmp *q = NULL;
	const char *replies[] = { "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}, \"id\": ID}\n", NULL };
	assert_int_equal(peer_pair(s), 0);
	pid_t peer = scripted_peer(s, GREETING, replies);
	close(s[1]);
	assert_int_equal(qu_qmp_attach(s[0], deadline_ms(5000), &q), -EREMOTEIO);
	assert_non_null(strstr(qu_err_msg(), "qmp_capabilities"));
	reap_peer(peer);
}

static void attach_scripted_peer(void **state)
{
	int s[2], maj, min, mic;
	struct qu_qmp *q = NULL;
	const char *replies[] = { OK_REPLY, NULL };
	assert_int_equal(peer_pair(s), 0);
	pid_t peer = scripted_peer(s, GREETING, replies);
	close(s[1]);
	assert_int_equal(qu_qmp_attach(s[0], deadline_ms(5000), &q), 0);
	qu_qmp_version(q, &maj, &min, &mic);
	assert_int_equal(maj, 8);
	assert_int_equal(min, 1);
	assert_int_equal(mic, 3);
	qu_qmp_close(q);
	reap_peer(peer);
}

static void stale_answers_skipped_and_events_filtered(void **state)
{
	int s[2];
	struct qu_qmp *q = NULL;
	json_object *ret = NULL, *data = NULL, *v;
	const char *statuses_completed[] = { "completed", NULL }, *statuses_failed[] = { "failed", NULL };
	const char *replies[] = {
		OK_REPLY,
		/* An answer to some earlier command, two events, then the real answer. */
		"{\"return\": {\"status\": \"stale\"}, \"id\": 424242}\n"
		"{\"event\": \"MIGRATION\", \"data\": {\"status\": \"setup\"}}\n"
		"{\"event\": \"MIGRATION\", \"data\": {\"status\": \"completed\"}}\n"
		"{\"return\": {\"status\": \"running\"}, \"id\": ID}\n",
		NULL,
	};
	assert_int_equal(peer_pair(s), 0);
	pid_t peer = scripted_peer(s, GREETING, replies);
	close(s[1]);
	assert_int_equal(qu_qmp_attach(s[0], deadline_ms(5000), &q), 0);
	assert_int_equal(qu_qmp_execute(q, "query-status", NULL, -1, deadline_ms(5000), &ret), 0);
	assert_true(json_object_object_get_ex(ret, "status", &v));
	assert_string_equal(json_object_get_string(v), "running");
	json_object_put(ret);
	/* The later of the two queued events, picked by status. */
	assert_int_equal(qu_qmp_wait_event(q, "MIGRATION", statuses_completed, -1, qu_now_us(), &data), 0);
	assert_true(json_object_object_get_ex(data, "status", &v));
	assert_string_equal(json_object_get_string(v), "completed");
	json_object_put(data);
	data = NULL;
	/* No "failed" one: waits (for the peer, which sends nothing more) until the deadline. */
	assert_int_equal(qu_qmp_wait_event(q, "MIGRATION", statuses_failed, -1, deadline_ms(50), &data),
			 -ETIMEDOUT);
	/* Any status: the "setup" one is still there. */
	assert_int_equal(qu_qmp_wait_event(q, "MIGRATION", NULL, -1, qu_now_us(), &data), 0);
	assert_true(json_object_object_get_ex(data, "status", &v));
	assert_string_equal(json_object_get_string(v), "setup");
	json_object_put(data);
	qu_qmp_close(q);
	reap_peer(peer);
}

/* Found by tests/fuzz/fuzz-qmp: an event whose name or status is JSON null (json-c gives a
 * NULL string for it) was compared with strcmp. It matches nothing now. */
static void events_with_null_name_or_status_skipped(void **state)
{
	int s[2];
	struct qu_qmp *q = NULL;
	json_object *data = NULL, *v;
	const char *statuses[] = { "completed", NULL };
	const char *replies[] = {
		OK_REPLY,
		"{\"event\": null}\n"
		"{\"event\": \"MIGRATION\", \"data\": {\"status\": null}}\n"
		"{\"event\": \"MIGRATION\", \"data\": {\"status\": \"completed\"}}\n"
		"{\"return\": {}, \"id\": ID}\n",
		NULL,
	};
	assert_int_equal(peer_pair(s), 0);
	pid_t peer = scripted_peer(s, GREETING, replies);
	close(s[1]);
	assert_int_equal(qu_qmp_attach(s[0], deadline_ms(5000), &q), 0);
	assert_int_equal(qu_qmp_execute(q, "query-status", NULL, -1, deadline_ms(5000), NULL), 0);
	assert_int_equal(qu_qmp_wait_event(q, "MIGRATION", statuses, -1, qu_now_us(), &data), 0);
	assert_true(json_object_object_get_ex(data, "status", &v));
	assert_string_equal(json_object_get_string(v), "completed");
	json_object_put(data);
	qu_qmp_close(q);
	reap_peer(peer);
}

static void answer_that_is_not_an_object(void **state)
{
	int s[2];
	struct qu_qmp *q = NULL;
	const char *replies[] = { OK_REPLY, "\"just a string\"\n", NULL };
	assert_int_equal(peer_pair(s), 0);
	pid_t peer = scripted_peer(s, GREETING, replies);
	close(s[1]);
	assert_int_equal(qu_qmp_attach(s[0], deadline_ms(5000), &q), 0);
	assert_int_equal(qu_qmp_execute(q, "query-status", NULL, -1, deadline_ms(5000), NULL), -EPROTO);
	assert_non_null(strstr(qu_err_msg(), "query-status"));
	qu_qmp_close(q);
	reap_peer(peer);
}

static void monitor_closes_during_command(void **state)
{
	int s[2];
	struct qu_qmp *q = NULL;
	const char *replies[] = { OK_REPLY, "CLOSE", NULL };
	assert_int_equal(peer_pair(s), 0);
	pid_t peer = scripted_peer(s, GREETING, replies);
	close(s[1]);
	assert_int_equal(qu_qmp_attach(s[0], deadline_ms(5000), &q), 0);
	reap_peer(peer); /* the peer has closed its end before the command is sent */
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	sigaction(SIGPIPE, &ign, &old);
	int r = qu_qmp_execute(q, "query-status", NULL, -1, deadline_ms(5000), NULL);
	sigaction(SIGPIPE, &old, NULL);
	assert_true(r == -EPIPE || r == -ECONNRESET);
	qu_qmp_close(q);
}

static void greeting_in_pieces(void **state)
{
	int s[2];
	struct qu_qmp *q = NULL;
	assert_int_equal(peer_pair(s), 0);
	fflush(stdout);
	pid_t peer = fork();
	assert_true(peer >= 0);
	if (peer == 0) {
		close(s[0]);
		const char *g = GREETING;
		size_t n = strlen(g);
		for (size_t off = 0; off < n; off += 7) {
			size_t k = n - off < 7 ? n - off : 7;
			if (write(s[1], g + off, k) != (ssize_t)k)
				_exit(1);
			usleep(3000);
		}
		json_object *cmd = read_command(s[1]), *id;
		char out[128];
		if (!cmd)
			_exit(2);
		snprintf(out, sizeof(out), "{\"return\": {}, \"id\": %s}\n",
			 json_object_object_get_ex(cmd, "id", &id) ? json_object_to_json_string(id) : "0");
		_exit(write(s[1], out, strlen(out)) > 0 ? 0 : 3);
	}
	close(s[1]);
	assert_int_equal(qu_qmp_attach(s[0], deadline_ms(5000), &q), 0);
	qu_qmp_close(q);
	reap_peer(peer);
}

static void oversized_message_is_emsgsize(void **state)
{
	/* A "line" of 17 MiB without a newline: more than a monitor we can trust would send. */
	int s[2];
	struct qu_qmp *q = NULL;
	assert_int_equal(peer_pair(s), 0);
	fflush(stdout);
	pid_t peer = fork();
	assert_true(peer >= 0);
	if (peer == 0) {
		static char chunk[1 << 16];
		close(s[0]);
		signal(SIGPIPE, SIG_IGN);
		memset(chunk, 'x', sizeof(chunk));
		for (int i = 0; i < 17 * 16; i++)
			if (write(s[1], chunk, sizeof(chunk)) < 0)
				_exit(0); /* the client gave up and closed */
		_exit(0);
	}
	close(s[1]);
	assert_int_equal(qu_qmp_attach(s[0], deadline_ms(20000), &q), -EMSGSIZE);
	assert_null(q);
	reap_peer(peer);
}

static void connect_missing_socket(void **state)
{
	struct qu_qmp *q = NULL;
	const char *path = "/tmp/qu-unit-no-such-dir/q.sock";
	assert_int_equal(qu_qmp_connect(path, deadline_ms(2000), &q), -ENOENT);
	assert_null(q);
	assert_non_null(strstr(qu_err_msg(), path));
}

static void connect_path_too_long(void **state)
{
	struct qu_qmp *q = NULL;
	char path[200];
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(qu_qmp_connect(path, deadline_ms(2000), &q), -ENAMETOOLONG);
}

#define Q(fn) cmocka_unit_test_setup_teardown(fn, start_qemu, stop_qemu)

int main(void)
{
	const struct CMUnitTest tests[] = {
		Q(greeting_version),
		Q(query_status_running),
		Q(execute_returns_value),
		Q(execute_with_arguments),
		Q(query_string_missing_member),
		Q(unknown_command),
		Q(bad_arguments),
		Q(getfd_and_closefd),
		Q(getfd_without_descriptor),
		Q(wait_event_times_out),
		Q(events_during_command_are_kept),
		Q(wait_event_watch_fd),
		Q(quit_then_command_fails),
		Q(quit_then_command_answers_connection_closed),
		Q(command_to_exited_qemu_raises_no_sigpipe),
		cmocka_unit_test(attach_hello_peer_is_eproto),
		cmocka_unit_test(attach_non_greeting_object_is_eproto),
		cmocka_unit_test(attach_json_array_is_eproto),
		cmocka_unit_test(attach_peer_closes_is_econnreset),
		cmocka_unit_test(attach_silent_peer_times_out),
		cmocka_unit_test(attach_capabilities_refused),
		cmocka_unit_test(attach_scripted_peer),
		cmocka_unit_test(stale_answers_skipped_and_events_filtered),
		cmocka_unit_test(events_with_null_name_or_status_skipped),
		cmocka_unit_test(answer_that_is_not_an_object),
		cmocka_unit_test(monitor_closes_during_command),
		cmocka_unit_test(greeting_in_pieces),
		cmocka_unit_test(oversized_message_is_emsgsize),
		cmocka_unit_test(connect_missing_socket),
		cmocka_unit_test(connect_path_too_long),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
