/* The qemu-upgrade command: its commands from a table (commands[], below); the upgrade of
 * one VM, --all and --recover share one set of options and are picked by them. It calls only
 * the public API (include/qemu-upgrade.h) and links against the shared library, so it can do
 * nothing a management daemon could not. */
#include "qemu-upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum exit_code { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_REFUSED = 3, EXIT_UNSETTLED = 4 };

/* The command line, and what the upgrade's options asked for. */
struct cli {
	int argc;
	char **argv;
	struct qu_handle *h; /* the upgrade's: the options that concern one VM go straight to it */
	pid_t pid;
	int json, verbose, recover, all, from_hook, jobs;
	const char *all_binary, *stream_out, *remote, *pki_dir;
	unsigned timeout_ms, max_downtime, flags;
	unsigned long long max_bandwidth;
};

struct command {
	/* The first argument that names it ("agent"); an option of the upgrade's that picks it
	 * ("--all"); NULL: the upgrade of one VM, when nothing else is named or picked. */
	const char *name;
	int nargs; /* a named command: how many arguments it takes after its name (-1: any) */
	int (*run)(struct cli *cli);
	const char *usage; /* its lines of --help, each after "qemu-upgrade " */
};

static void usage(FILE *f);
static const struct command *command_named(const char *name);

static int dump_stream(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "qemu-upgrade: cannot open %s: %s\n", path, strerror(errno));
		return EXIT_USAGE;
	}
	int r = qu_dump_stream(fd, stdout);
	if (r < 0)
		fprintf(stderr, "qemu-upgrade: %s: %s\n", path, qu_get_error());
	close(fd);
	return r < 0 ? EXIT_FAILED : EXIT_OK;
}

static int progress_json, progress_shown;

/* A copy's progress: one updating line on a terminal, or JSON lines on stderr with --json
 * (stdout keeps its single report object). */
static void show_progress(const struct qu_progress *p, void *arg)
{
	(void)arg;
	double gib = 1024.0 * 1024.0 * 1024.0;
	if (progress_json) {
		fprintf(stderr, "{\"event\":\"progress\",\"transferred_bytes\":%llu,\"remaining_bytes\":%llu,"
			"\"total_bytes\":%llu,\"mbps\":%.1f,\"eta_s\":%.1f}\n", p->transferred, p->remaining,
			p->total, p->mbps, p->eta_s);
		return;
	}
	fprintf(stderr, "\rcopying guest RAM: %.2f GiB sent, %.2f GiB left of %.2f, %.0f MB/s, ETA %s%.1f s   ",
		(double)p->transferred / gib, (double)p->remaining / gib, (double)p->total / gib, p->mbps / 8.0,
		p->eta_s < 0 ? "~" : "", p->eta_s < 0 ? 0.0 : p->eta_s);
	progress_shown = 1;
}

static void on_signal(int sig)
{
	(void)sig;
	qu_cancel();
}

/* SIGINT, SIGTERM and SIGHUP roll an upgrade back before its commit point (no SA_RESTART:
 * the waits must wake up), and finish it after. */
static void install_signal_handlers(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static int check_command(struct cli *cli)
{
	int argc = cli->argc - 1;
	char **argv = cli->argv + 1;
	static const struct option opts[] = {
		{ "binary", required_argument, NULL, 'b' }, { "json", no_argument, NULL, 'j' },
		{ "remote", required_argument, NULL, 'r' }, { "remote-key", required_argument, NULL, 'k' },
		{ "pki-dir", required_argument, NULL, 'P' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *binary = NULL, *remote = NULL, *pki_dir = NULL;
	int json = 0, c;
	while ((c = getopt_long(argc, argv, "b:jr:h", opts, NULL)) != -1) {
		switch (c) {
		case 'b': binary = optarg; break;
		case 'j': json = 1; break;
		case 'r': remote = optarg; break;
		case 'k':
			fprintf(stderr, "qemu-upgrade check: " "--remote-key is gone: the TCP agent authenticates with x509 certificates now (TLS 1.3, "QU_PKI_DIR"/client-cert.pem and client-key.pem here; --pki-dir DIR names another directory), or use --remote ssh://HOST (docs/remote.md)""\n");
			return EXIT_USAGE;
		case 'P': pki_dir = optarg; break;
		case 'h':
			printf("Usage: qemu-upgrade check [--binary PATH] [--remote ssh://[USER@]HOST[:PORT]] [--json]\n"
			       "       qemu-upgrade check [--binary PATH] [--remote HOST[:PORT] [--pki-dir DIR]] [--json]\n"
			       "What this host offers qemu-upgrade (and, with --binary, what that QEMU does). With\n"
			       "--remote: whether the agent there answers (through ssh, or over TLS with the x509\n"
			       "certificates in DIR, default " QU_PKI_DIR "), and what the QEMU at PATH (default\n"
			       "/usr/bin/qemu-system-x86_64) is there.\n");
			return EXIT_OK;
		default:
			fprintf(stderr, "Try 'qemu-upgrade check --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "qemu-upgrade check: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (pki_dir && !remote) {
		fprintf(stderr, "qemu-upgrade check: --pki-dir goes with --remote HOST\n");
		return EXIT_USAGE;
	}
	int r = qu_check(binary, remote, pki_dir, json ? QU_OUT_JSON : 0, stdout);
	if (r < 0)
		fprintf(stderr, "qemu-upgrade check: %s\n", qu_get_error());
	return r < 0 ? EXIT_USAGE : r ? EXIT_FAILED : EXIT_OK;
}

static int agent_command(struct cli *cli)
{
	int argc = cli->argc - 1;
	char **argv = cli->argv + 1;
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' }, { "key", required_argument, NULL, 'k' },
		{ "once", no_argument, NULL, 'o' },         { "verbose", no_argument, NULL, 'v' },
		{ "stdio", no_argument, NULL, 's' },        { "help", no_argument, NULL, 'h' },
		{ "pki-dir", required_argument, NULL, 'P' }, { NULL, 0, NULL, 0 },
	};
	const char *listen = NULL, *pki_dir = NULL;
	int once = 0, verbose = 1, stdio = 0, c;
	while ((c = getopt_long(argc, argv, "l:k:ovh", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen = optarg; break;
		case 'k':
			fprintf(stderr, "qemu-upgrade agent: --key is gone: `agent --listen` runs TLS 1.3 with x509 "
					"certificates now (" QU_PKI_DIR "/ca-cert.pem, server-cert.pem, server-key.pem; --pki-dir "
					"DIR names another directory) and lets in the tools agent_tls_clients names in "
					"/etc/qemu-upgrade.conf; or use ssh (docs/remote.md)\n");
			return EXIT_USAGE;
		case 'P': pki_dir = optarg; break;
		case 'o': once = 1; break;
		case 'v': verbose++; break;
		case 's': stdio = 1; break;
		case 'h':
			printf("Usage: qemu-upgrade agent --stdio\n"
			       "       qemu-upgrade agent [--listen [ADDR:]PORT] [--pki-dir DIR] [--once]\n"
			       "Receives VMs that `qemu-upgrade --pid PID --remote ...` moves here, and starts each new\n"
			       "QEMU as the VM ran on its old host.\n"
			       "--stdio: one upgrade on stdin/stdout: the command `--remote ssh://root@THIS-HOST` runs\n"
			       "  here through sshd (nothing to start or configure beyond root's authorized key).\n"
			       "--listen: listens on TCP (default: port 4779, every address), runs TLS 1.3 with the x509\n"
			       "  certificates in DIR (default " QU_PKI_DIR ": ca-cert.pem, server-cert.pem,\n"
			       "  server-key.pem) and lets in only a tool whose certificate the CA signed and whose\n"
			       "  name agent_tls_clients in /etc/qemu-upgrade.conf lists.\n"
			       "  --once: serve one upgrade, then exit.\n");
			return EXIT_OK;
		default:
			fprintf(stderr, "Try 'qemu-upgrade agent --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "qemu-upgrade agent: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (stdio && (listen || pki_dir || once)) {
		fprintf(stderr, "qemu-upgrade agent: --stdio serves one upgrade over ssh: no --listen, --pki-dir or --once with it\n");
		return EXIT_USAGE;
	}
	qu_set_log_level(verbose);
	if (qu_agent_run(listen, pki_dir, (once ? QU_AGENT_ONCE : 0) | (stdio ? QU_AGENT_STDIO : 0)) < 0) {
		fprintf(stderr, "qemu-upgrade agent: %s\n", qu_get_error());
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

static int parse_pid(const char *s, pid_t *pid)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v <= 0 || v > 4194304)
		return -1;
	*pid = (pid_t)v;
	return 0;
}

/* `standby start|status|stop`: a VM protected by a COLO secondary on another host
 * (docs/standby.md). */
static int standby_command(struct cli *cli)
{
	int argc = cli->argc - 1;
	char **argv = cli->argv + 1;
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },      { "remote", required_argument, NULL, 'r' },
		{ "interval", required_argument, NULL, 'i' }, { "json", no_argument, NULL, 'j' },
		{ "dry-run", no_argument, NULL, 'n' },        { "pki-dir", required_argument, NULL, 'P' },
		{ "heartbeat-timeout", required_argument, NULL, 'H' }, { "renew", no_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },           { NULL, 0, NULL, 0 },
	};
	unsigned heartbeat_ms = 0;
	const char *remote = NULL, *pki_dir = NULL, *verb = argc >= 2 && argv[1][0] != '-' ? argv[1] : NULL;
	unsigned interval_ms = 0;
	int json = 0, dry_run = 0, renew = 0, c;
	pid_t pid = 0;
	char *end;
	if (verb) {
		argc--;
		argv++;
	}
	while ((c = getopt_long(argc, argv, "p:r:jnh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (parse_pid(optarg, &pid) < 0) {
				fprintf(stderr, "qemu-upgrade standby: --pid %s: not a process ID\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'r': remote = optarg; break;
		case 'P': pki_dir = optarg; break;
		case 'i': {
			long ms = strtol(optarg, &end, 10);
			if (*end || ms < 1 || ms > 3600000) {
				fprintf(stderr, "qemu-upgrade standby: --interval %s: give milliseconds between checkpoints, "
						"e.g. 1000\n", optarg);
				return EXIT_USAGE;
			}
			interval_ms = (unsigned)ms;
			break;
		}
		case 'H': {
			long ms = strtol(optarg, &end, 10);
			if (*end || ms < 1 || ms > 3600000) {
				fprintf(stderr, "qemu-upgrade standby: --heartbeat-timeout %s: give milliseconds, e.g. 15000\n",
					optarg);
				return EXIT_USAGE;
			}
			heartbeat_ms = (unsigned)ms;
			break;
		}
		case 'j': json = 1; break;
		case 'n': dry_run = 1; break;
		case 'R': renew = 1; break;
		case 'h':
			printf("Usage: qemu-upgrade standby start --pid PID --remote ssh://[USER@]HOST[:PORT] [--interval MS]\n"
			       "                                 --dry-run [--json]\n"
			       "       qemu-upgrade standby start --pid PID --remote HOST[:PORT] [--pki-dir DIR] ... --dry-run\n"
			       "Protects a running VM by a secondary QEMU on HOST that COLO checkpoints every MS\n"
			       "milliseconds (default 1000, 100 to 60000), and that takes over when this host or\n"
			       "its QEMU dies (docs/standby.md). QEMU 11.1 only, the same binary on both hosts.\n"
			       "--dry-run: what would be built and wired there and here, or every reason the VM\n"
			       "  cannot be protected, each with what to do (exit 3); nothing is changed.\n"
			       "       qemu-upgrade standby status [--pid PID] [--json]   (without --pid: every VM)\n"
			       "       qemu-upgrade standby stop --pid PID [--json]\n"
			       "       qemu-upgrade standby switchover --pid PID [--json]\n"
			       "Without --dry-run, start protects the VM and returns once it is protected; a\n"
			       "supervisor stays behind. When the VM's QEMU dies the secondary takes over; when\n"
			       "the hosts lose each other for --heartbeat-timeout MS (default 15000, 4000 to\n"
			       "20000), the secondary takes over and this host stops its QEMU after half of that.\n"
			       "stop ends protection, the VM running here alone; switchover moves the guest to\n"
			       "HOST on purpose (a checkpoint, then this host's QEMU stopped and the secondary\n"
			       "taking over). After a failover, start on the other host protects it back from\n"
			       "there, --renew, which first moves the guest into a new QEMU process (an in-place\n"
			       "upgrade to the binary it runs, its RAM copied once): a QEMU that took over as a\n"
			       "secondary is refused as a primary (docs/standby.md, \"Failback\").\n"
			       "Disks: one IDE disk under a quorum (docs/standby.md); other shapes are refused.\n");
			return EXIT_OK;
		default:
			fprintf(stderr, "Try 'qemu-upgrade standby --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "qemu-upgrade standby: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (!verb || (strcmp(verb, "start") && strcmp(verb, "status") && strcmp(verb, "stop") &&
		      strcmp(verb, "switchover"))) {
		fprintf(stderr, "qemu-upgrade standby: give start, status, stop or switchover (see standby --help)\n");
		return EXIT_USAGE;
	}
	if (strcmp(verb, "start")) {
		if (!pid && strcmp(verb, "status")) {
			fprintf(stderr, "qemu-upgrade standby %s: which VM? Give --pid PID\n", verb);
			return EXIT_USAGE;
		}
		unsigned f = json ? QU_OUT_JSON : 0;
		int r = !strcmp(verb, "status") ? qu_standby_status(pid, f, stdout)
			: !strcmp(verb, "stop") ? qu_standby_stop(pid, f, stdout)
						: qu_standby_switchover(pid, f, stdout);
		if (r < 0)
			fprintf(stderr, "qemu-upgrade standby %s: %s\n", verb, qu_get_error());
		return r < 0 ? EXIT_FAILURE : EXIT_OK;
	}
	if (!pid) {
		fprintf(stderr, "qemu-upgrade standby start: which VM? Give --pid PID\n");
		return EXIT_USAGE;
	}
	if (!remote) {
		fprintf(stderr, "qemu-upgrade standby start: where should the secondary run? Give --remote ssh://HOST "
				"or --remote HOST (the TLS agent)\n");
		return EXIT_USAGE;
	}
	unsigned sf = (json ? QU_OUT_JSON : 0) | (renew ? QU_STANDBY_RENEW : 0);
	int r = dry_run ? qu_standby_plan(pid, remote, pki_dir, interval_ms, sf, stdout)
			: qu_standby_start(pid, remote, pki_dir, interval_ms, heartbeat_ms, sf, stdout);
	if (r < 0)
		fprintf(stderr, "qemu-upgrade standby start: %s\n", qu_get_error());
	if (r < 0)
		return errno == EINVAL ? EXIT_USAGE : EXIT_FAILURE;
	return r ? EXIT_REFUSED : EXIT_OK;
}

/* After a usage error's message: the hint, and exit 2 (nothing was touched). */
static int usage_error(struct cli *cli)
{
	qu_free(cli->h);
	cli->h = NULL;
	fprintf(stderr, "Try 'qemu-upgrade --help'.\n");
	return EXIT_USAGE;
}

/* read_options: every option read, the command goes on. */
#define READ_ON (-1)

/* The upgrade's options, into cli and its handle: READ_ON, or the exit code when done
 * (--help, or a usage error). */
static int read_options(struct cli *cli)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },      { "new-binary", required_argument, NULL, 'b' },
		{ "qmp", required_argument, NULL, 'q' },      { "dry-run", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },           { "timeout", required_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },        { "quiet", no_argument, NULL, 'Q' },
		{ "recover", no_argument, NULL, 'R' },        { "all", no_argument, NULL, 'A' },
		{ "binary", required_argument, NULL, 'B' },  { "jobs", required_argument, NULL, 'J' },
		{ "from-hook", no_argument, NULL, 'H' },      { "allow-copy", no_argument, NULL, 'C' },
		{ "low-memory", no_argument, NULL, 'L' },     { "remote", required_argument, NULL, 'r' },
		{ "remote-key", required_argument, NULL, 'K' }, { "copy-storage", no_argument, NULL, 'S' },
		{ "pki-dir", required_argument, NULL, 'P' + 256 },
		{ "shared-storage", no_argument, NULL, 'S' + 256 }, { "no-tls", no_argument, NULL, 'T' + 256 },
		{ "max-downtime", required_argument, NULL, 'D' }, { "max-bandwidth", required_argument, NULL, 'W' + 256 },
		{ "help", no_argument, NULL, 'h' },           { "write-stream", required_argument, NULL, 'W' },
		{ "libvirt-restart", no_argument, NULL, 'V' + 256 },
		{ "copy-storage-inc", no_argument, NULL, 'I' + 256 }, { "verify", no_argument, NULL, 'Y' + 256 },
		{ "keep-pid", no_argument, NULL, 'k' + 256 },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(cli->argc, cli->argv, "p:b:q:njt:vhr:", opts, NULL)) != -1) {
		int r = 0;
		char *end;
		switch (c) {
		case 'p':
			if (parse_pid(optarg, &cli->pid) < 0) {
				fprintf(stderr, "qemu-upgrade: --pid %s: not a process ID\n", optarg);
				return usage_error(cli);
			}
			r = qu_set_pid(cli->h, cli->pid);
			break;
		case 'b': r = qu_set_new_binary(cli->h, optarg); break;
		case 'q': r = qu_set_qmp_socket(cli->h, optarg); break;
		case 'n': cli->flags |= QU_FLAG_DRY_RUN; break;
		case 'C': cli->flags |= QU_FLAG_ALLOW_COPY; break;
		case 'L': cli->flags |= QU_FLAG_LOW_MEMORY; break;
		case 'V' + 256: cli->flags |= QU_FLAG_LIBVIRT_RESTART; break;
		case 'r': cli->remote = optarg; break;
		case 'K':
			fprintf(stderr, "qemu-upgrade: " "--remote-key is gone: the TCP agent authenticates with x509 certificates now (TLS 1.3, "QU_PKI_DIR"/client-cert.pem and client-key.pem here; --pki-dir DIR names another directory), or use --remote ssh://HOST (docs/remote.md)""\n");
			return usage_error(cli);
		case 'P' + 256: cli->pki_dir = optarg; break;
		case 'S': cli->flags |= QU_FLAG_COPY_STORAGE; break;
		case 'S' + 256: cli->flags |= QU_FLAG_SHARED_STORAGE; break;
		case 'T' + 256: cli->flags |= QU_FLAG_NO_TLS; break;
		case 'I' + 256: cli->flags |= QU_FLAG_COPY_STORAGE_INC; break;
		case 'Y' + 256: cli->flags |= QU_FLAG_VERIFY; break;
		case 'k' + 256: cli->flags |= QU_FLAG_KEEP_PID; break;
		case 'j': cli->json = 1; break;
		case 't': {
			double s = strtod(optarg, &end);
			if (*end || s <= 0 || s > 86400) {
				fprintf(stderr, "qemu-upgrade: --timeout %s: give seconds, e.g. --timeout 30\n", optarg);
				return usage_error(cli);
			}
			cli->timeout_ms = (unsigned)(s * 1000);
			r = qu_set_timeout_ms(cli->h, cli->timeout_ms);
			break;
		}
		case 'v': cli->verbose++; break;
		case 'Q': cli->verbose = 0; break;
		case 'R': cli->recover = 1; break;
		case 'A': cli->all = 1; break;
		case 'H': cli->all = cli->from_hook = 1; break;
		case 'B': cli->all_binary = optarg; break;
		case 'D': {
			long ms = strtol(optarg, &end, 10);
			if (*end || ms < 1 || ms > 60000) {
				fprintf(stderr, "qemu-upgrade: --max-downtime %s: give milliseconds, 1 to 60000\n", optarg);
				return usage_error(cli);
			}
			cli->max_downtime = (unsigned)ms;
			break;
		}
		case 'W' + 256: {
			double mib = strtod(optarg, &end);
			if (*end || mib <= 0 || mib > 1e7) {
				fprintf(stderr, "qemu-upgrade: --max-bandwidth %s: give MiB/s, e.g. 1000\n", optarg);
				return usage_error(cli);
			}
			cli->max_bandwidth = (unsigned long long)(mib * 1048576.0);
			break;
		}
		case 'J':
			cli->jobs = (int)strtol(optarg, &end, 10);
			if (*end || cli->jobs < 1 || cli->jobs > 64) {
				fprintf(stderr, "qemu-upgrade: --jobs %s: give a number from 1 to 64\n", optarg);
				return usage_error(cli);
			}
			break;
		case 'W': cli->stream_out = optarg; cli->flags |= QU_FLAG_DRY_RUN; break;
		case 'h':
			usage(stdout);
			qu_free(cli->h);
			return EXIT_OK;
		default: return usage_error(cli);
		}
		if (r < 0) {
			fprintf(stderr, "qemu-upgrade: %s\n", qu_get_error());
			return usage_error(cli);
		}
	}
	if (optind < cli->argc) {
		fprintf(stderr, "qemu-upgrade: unexpected argument '%s'\n", cli->argv[optind]);
		return usage_error(cli);
	}
	return READ_ON;
}

/* The upgrade's options: read, checked against each other, then the one that picks the
 * command (--all, --recover; none: the upgrade of one VM) runs it. */
static int upgrade_command(struct cli *cli)
{
	cli->h = qu_new();
	if (!cli->h)
		return EXIT_FAILED;
	int rc = read_options(cli);
	if (rc != READ_ON)
		return rc;
	qu_set_log_level(cli->verbose);
	unsigned remote_only = QU_FLAG_COPY_STORAGE | QU_FLAG_COPY_STORAGE_INC | QU_FLAG_SHARED_STORAGE | QU_FLAG_NO_TLS |
			       QU_FLAG_VERIFY;
	if (!cli->remote && (cli->pki_dir || (cli->flags & remote_only))) {
		fprintf(stderr, "qemu-upgrade: --copy-storage, --copy-storage-inc, --shared-storage, --verify, --no-tls and "
				"--pki-dir go with --remote HOST\n");
		return usage_error(cli);
	}
	if ((cli->flags & QU_FLAG_VERIFY) && !(cli->flags & (QU_FLAG_COPY_STORAGE | QU_FLAG_COPY_STORAGE_INC))) {
		fprintf(stderr, "qemu-upgrade: --verify checks a disk copy: it goes with --copy-storage or --copy-storage-inc\n");
		return usage_error(cli);
	}
	if (cli->remote && (cli->flags & QU_FLAG_KEEP_PID)) {
		fprintf(stderr, "qemu-upgrade: --keep-pid keeps the VM in its process on this host: it does not go with --remote\n");
		return usage_error(cli);
	}
	if (cli->remote && (cli->all || cli->recover)) {
		fprintf(stderr, "qemu-upgrade: --remote moves one VM: give --pid PID, without --all or --recover\n");
		return usage_error(cli);
	}
	if (cli->remote && qu_set_remote(cli->h, cli->remote, cli->pki_dir) < 0) {
		fprintf(stderr, "qemu-upgrade: --remote %s: %s\n", cli->remote, qu_get_error());
		return usage_error(cli);
	}
	if ((cli->all_binary || cli->jobs) && !cli->all) {
		fprintf(stderr, "qemu-upgrade: --binary and --jobs go with --all\n");
		return usage_error(cli);
	}
	return command_named(cli->all ? "--all" : cli->recover ? "--recover" : NULL)->run(cli);
}

/* `inspect` is --dry-run under its own name: read the VM and the plan, change nothing. */
static int inspect_command(struct cli *cli)
{
	cli->argv[1] = (char *)"--dry-run";
	return upgrade_command(cli);
}

static int dump_stream_command(struct cli *cli)
{
	return dump_stream(cli->argv[2]);
}

static int all_command(struct cli *cli)
{
	if (cli->pid || cli->recover) {
		fprintf(stderr, "qemu-upgrade: --all upgrades every replaced VM; it takes no --pid or --recover\n");
		return usage_error(cli);
	}
	if (cli->flags & QU_FLAG_KEEP_PID) {
		fprintf(stderr, "qemu-upgrade: --keep-pid goes with --pid (one VM, asked for on purpose); --all does not take it\n");
		return usage_error(cli);
	}
	unsigned flags = (cli->flags & (QU_FLAG_DRY_RUN | QU_FLAG_ALLOW_COPY | QU_FLAG_LOW_MEMORY | QU_FLAG_LIBVIRT_RESTART)) |
			 (cli->json ? QU_OUT_JSON : 0) | (cli->from_hook ? QU_ALL_FROM_HOOK : 0);
	qu_free(cli->h);
	cli->h = NULL;
	install_signal_handlers();
	int rc = qu_upgrade_all(cli->all_binary, (unsigned)cli->jobs, cli->timeout_ms, flags, stdout);
	if (rc < 0)
		fprintf(stderr, "qemu-upgrade: %s\n", qu_get_error());
	/* A package manager must never fail because of us: the summary went to syslog. */
	return cli->from_hook ? EXIT_OK : rc < 0 ? EXIT_USAGE : rc;
}

static int recover_command(struct cli *cli)
{
	if (cli->pid) {
		fprintf(stderr, "qemu-upgrade: --recover settles every interrupted upgrade; it takes no --pid\n");
		return usage_error(cli);
	}
	qu_free(cli->h);
	cli->h = NULL;
	int n = qu_recover(stdout);
	if (n < 0) {
		fprintf(stderr, "qemu-upgrade: %s\n", qu_get_error());
		return EXIT_FAILED;
	}
	if (n == 0)
		printf("nothing to recover\n");
	return EXIT_OK;
}

/* The exit code of an upgrade that failed (r < 0): refused, unsettled, rolled back, or
 * stopped before anything was touched. */
static int failure_code(struct qu_handle *h, const char *result)
{
	if (qu_get_errno() == EOPNOTSUPP)
		return EXIT_REFUSED;
	if (result && !strcmp(result, "unsettled"))
		return EXIT_UNSETTLED;
	return qu_was_touched(h) ? EXIT_FAILED : EXIT_USAGE;
}

/* --write-stream FILE: the stream the new QEMU's launcher would get. */
static int write_stream(struct qu_handle *h, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), rc = EXIT_OK;
	if (fd < 0 || qu_write_stream(h, fd) < 0) {
		fprintf(stderr, "qemu-upgrade: cannot write the stream to %s: %s\n", path,
			fd < 0 ? strerror(errno) : qu_get_error());
		rc = EXIT_USAGE; /* nothing was touched: a bad path */
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

static int upgrade_one_command(struct cli *cli)
{
	if (!cli->pid) {
		fprintf(stderr, "qemu-upgrade: which VM? Give --pid PID (see --help)\n");
		return usage_error(cli);
	}
	install_signal_handlers();
	if (qu_set_flags(cli->h, cli->flags | QU_FLAG_DROP_PRIVILEGES) < 0) {
		fprintf(stderr, "qemu-upgrade: %s\n", qu_get_error());
		return usage_error(cli);
	}
	qu_set_copy_limits(cli->h, cli->max_downtime, cli->max_bandwidth);
	progress_json = cli->json;
	if (cli->json || isatty(STDERR_FILENO) || cli->verbose > 1)
		qu_set_progress(cli->h, show_progress, NULL);
	int r = qu_upgrade(cli->h), rc = EXIT_OK;
	if (progress_shown && !cli->json)
		fputc('\n', stderr);
	const char *result = qu_get_result(cli->h);
	if (r < 0) {
		fprintf(stderr, "qemu-upgrade: %s\n", qu_get_error());
		rc = failure_code(cli->h, result);
	}
	if (r == 0 && cli->stream_out)
		rc = write_stream(cli->h, cli->stream_out);
	if (result) {
		if (cli->json)
			printf("%s\n", qu_get_report_json(cli->h));
		else
			qu_print_report(cli->h, stdout);
	}
	qu_free(cli->h);
	return rc;
}

/* In the order --help lists them. */
static const struct command commands[] = {
	{ NULL, -1, upgrade_one_command,
	  "--pid PID [--new-binary PATH] [options]\n"
	  "--pid PID --remote ssh://[USER@]HOST[:PORT] [--copy-storage | --shared-storage] [options]" },
	{ "agent", -1, agent_command, "agent --stdio | agent [--listen [ADDR:]PORT] [--pki-dir DIR]" },
	{ "inspect", -1, inspect_command, "inspect --pid PID [--json]" },
	{ "check", -1, check_command, "check [--binary PATH] [--remote ssh://HOST] [--json]" },
	{ "standby", -1, standby_command, "standby start|status|stop|switchover --pid PID [--remote ssh://HOST] [--interval MS] [--renew] [--dry-run] [--json]" },
	{ "--all", -1, all_command, "--all [--binary PATH] [--jobs N] [--dry-run] [--json]" },
	{ "--recover", -1, recover_command, "--recover" },
	{ "dump-stream", 1, dump_stream_command, "dump-stream FILE" },
};

static const struct command *command_named(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (name ? commands[i].name && !strcmp(commands[i].name, name) : !commands[i].name)
			return &commands[i];
	return NULL;
}

/* --help, after the commands' lines. */
static const char help_text[] =
	"\n"
	"Puts a new QEMU binary under a running VM: a new QEMU process takes the guest over\n"
	"within milliseconds. Guest RAM in a shared memory backend (memory-backend-memfd or\n"
	"-file with share=on) stays where it is; only device state is sent, over a socketpair.\n"
	"\n"
	"Options:\n"
	"  -p, --pid PID          the running QEMU to upgrade\n"
	"  -b, --new-binary PATH  the QEMU to run it on (default: the binary now on disk at the\n"
	"                         running QEMU's executable path, e.g. after a package upgrade)\n"
	"  -q, --qmp SOCKET       the VM's QMP socket (default: found in its command line)\n"
	"  -n, --dry-run          inspect and plan only: print what would happen, change nothing\n"
	"  -j, --json             print the report as one JSON object on stdout\n"
	"  -t, --timeout SECONDS  give up and roll back after this long (default 60)\n"
	"      --allow-copy       RAM that cannot be handed over (plain -m, share=off, memfd on\n"
	"                         QEMU >= 8.1) may be copied once into shared memory; later\n"
	"                         upgrades of the VM are zero-copy\n"
	"      --low-memory       copy such RAM with postcopy: the old QEMU frees each page once\n"
	"                         sent, so the host needs little more than one copy (chosen by\n"
	"                         itself with --allow-copy when a precopy would not fit). RISK:\n"
	"                         if a QEMU dies while pages still move, the guest is lost\n"
	"      --keep-pid         keep the VM's PID, for managers that watch it: the old QEMU\n"
	"                         execs the new binary in its own process (cpr-exec; QEMU >= 10.2\n"
	"                         on both sides, shared memfd/file RAM, -machine aux-ram-share=on,\n"
	"                         no -sandbox spawn=deny). The pause is longer (the new QEMU's\n"
	"                         start-up falls inside it); a VM that cannot keep its PID is\n"
	"                         refused with every reason, never upgraded another way\n"
	"      --max-downtime MS  when RAM must be copied: QEMU's downtime limit (default 300)\n"
	"      --max-bandwidth MIB  when RAM must be copied: cap in MiB/s (default: none)\n"
	"  -r, --remote ssh://[USER@]HOST[:PORT]  move the VM to another host: ssh (BatchMode, your\n"
	"                         keys and known_hosts; QEMU_UPGRADE_SSH replaces the command, as\n"
	"                         GIT_SSH_COMMAND does for git) runs `qemu-upgrade agent --stdio`\n"
	"                         there; a new QEMU starts there, guest RAM is copied over TCP\n"
	"                         (TLS), and the guest's MACs are announced there. --new-binary is\n"
	"                         then a path on that host. HOST[:PORT] without ssh:// is the\n"
	"                         TLS agent (`agent --listen`, port 4779, x509 certificates)\n"
	"      --copy-storage     with --remote: copy the VM's writable disks into new images at\n"
	"                         the same paths there (NBD mirror while the guest runs); a\n"
	"                         backing chain becomes one standalone image there\n"
	"      --copy-storage-inc with --remote: as --copy-storage, but of a disk with a backing\n"
	"                         chain only the top image moves, onto the same backing files\n"
	"                         there (checked first: size, format, a sum of their data)\n"
	"      --verify           with a disk copy: both hosts sum what was copied before the\n"
	"                         guest resumes there; a difference rolls the move back\n"
	"      --shared-storage   with --remote: the other host sees the same disk files\n"
	"      --pki-dir DIR      with --remote HOST (the TLS agent): the x509 certificates,\n"
	"                         ca-cert.pem, client-cert.pem, client-key.pem (default\n"
	"                         " QU_PKI_DIR ")\n"
	"      --no-tls           with --remote: QEMU's migration and the disk copy over plain TCP\n"
	"                         (default: TLS, with a fresh key sent inside the ssh or TLS\n"
	"                         channel to the agent)\n"
	"      --libvirt-restart  a VM libvirt runs: stop libvirt's daemon (libvirtd, virtqemud;\n"
	"                         it holds the VM's monitor, and its VMs keep running), upgrade,\n"
	"                         make libvirt's status file name the new QEMU, start the daemon\n"
	"                         again whatever happened. Without it such a VM is refused while\n"
	"                         the daemon runs. With --all: one stop for the whole batch\n"
	"  -v, --verbose          more progress lines (twice: QMP traffic)\n"
	"      --write-stream FILE  plan only, and write the handover stream the new QEMU's\n"
	"                         launcher would get to FILE (read it with dump-stream)\n"
	"      --quiet            no progress lines, only the report\n"
	"      --all              every running QEMU whose binary was replaced on disk (a package\n"
	"                         upgrade) moves to the binary now at its path; others are left\n"
	"                         alone. Reads /etc/qemu-upgrade.conf (jobs, exclude)\n"
	"      --binary PATH      with --all: only VMs running PATH\n"
	"      --jobs N           with --all: N upgrades at once (default: jobs in the config, 4)\n"
	"      --from-hook        --all as the package hook runs it: obeys 'enabled' in the\n"
	"                         config, logs to syslog, always exits 0\n"
	"      --recover          settle upgrades left behind by a tool and guardian that both\n"
	"                         died (journals in /run/qemu-upgrade): finish or roll back;\n"
	"                         an upgrade still running is waited for 30 s, then left (exit 1)\n"
	"  -h, --help             this text\n"
	"\n"
	"Examples:\n"
	"  qemu-upgrade --pid 1234 --new-binary /usr/bin/qemu-system-x86_64\n"
	"  qemu-upgrade --pid 1234 --dry-run          # show the plan, touch nothing\n"
	"  qemu-upgrade --pid 1234 --json             # for programs\n"
	"  qemu-upgrade --all --dry-run              # which VMs a package upgrade left behind\n"
	"  qemu-upgrade --pid 1234 --remote ssh://root@host2 --copy-storage   # move it, disks too\n"
	"  qemu-upgrade inspect --pid 1234           # the plan in words, as --dry-run\n"
	"  qemu-upgrade check --binary /usr/bin/qemu-system-x86_64\n"
	"  qemu-upgrade --pid 1234 --write-stream s.bin && qemu-upgrade dump-stream s.bin\n"
	"\n"
	"Exit status: 0 upgraded (or planned); 1 failed and rolled back (the old QEMU runs the\n"
	"guest, also after Ctrl-C before the commit point); 2 error before anything was touched (bad usage or input, VM unreachable);\n"
	"3 refused (the VM cannot be upgraded; it was not touched); 4 a low-memory (postcopy) upgrade, or a\n"
	"--remote one, failed past the point of no return: not rolled back (the message says what\n"
	"happened to the guest).\n";

static void usage(FILE *f)
{
	const char *lead = "Usage: ";
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		for (const char *line = commands[i].usage; *line;) {
			size_t n = strcspn(line, "\n");
			fprintf(f, "%sqemu-upgrade %.*s\n", lead, (int)n, line);
			lead = "       ";
			line += n + (line[n] == '\n');
		}
	fputs(help_text, f);
}

int main(int argc, char **argv)
{
	struct cli cli = { .argc = argc, .argv = argv, .verbose = 1 };
	/* A command named by the first argument, taking as many arguments as it does; anything
	 * else is the upgrade's options (an option such as --all picks its command there). */
	const struct command *cmd = argc >= 2 ? command_named(argv[1]) : NULL;
	if (!cmd || cmd->name[0] == '-' || (cmd->nargs >= 0 && argc - 2 != cmd->nargs))
		return upgrade_command(&cli);
	return cmd->run(&cli);
}
