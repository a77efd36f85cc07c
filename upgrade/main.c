/* The qemu-upgrade command: options in, the public API (include/qemu-upgrade.h) out. It links
 * against the shared library, so it can reach nothing a management daemon could not. */
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

static void usage(FILE *f)
{
	fputs("Usage: qemu-upgrade --pid PID [--new-binary PATH] [options]\n"
	      "       qemu-upgrade --pid PID --remote HOST [--copy-storage | --shared-storage] [options]\n"
	      "       qemu-upgrade agent [--listen [ADDR:]PORT] [--key FILE]\n"
	      "       qemu-upgrade inspect --pid PID [--json]\n"
	      "       qemu-upgrade check [--binary PATH] [--remote HOST] [--json]\n"
	      "       qemu-upgrade --all [--binary PATH] [--jobs N] [--dry-run] [--json]\n"
	      "       qemu-upgrade --recover\n"
	      "       qemu-upgrade dump-stream FILE\n"
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
	      "      --max-downtime MS  when RAM must be copied: QEMU's downtime limit (default 300)\n"
	      "      --max-bandwidth MIB  when RAM must be copied: cap in MiB/s (default: none)\n"
	      "  -r, --remote HOST[:PORT]  move the VM to another host, where `qemu-upgrade agent` runs\n"
	      "                         (port 4779 by default): a new QEMU starts there, guest RAM is\n"
	      "                         copied over TCP, and the guest's MACs are announced there.\n"
	      "                         --new-binary is then a path on that host\n"
	      "      --copy-storage     with --remote: copy the VM's writable disks into new images at\n"
	      "                         the same paths there (NBD mirror while the guest runs)\n"
	      "      --shared-storage   with --remote: the other host sees the same disk files\n"
	      "      --remote-key FILE  the key shared with the agent (default " QU_AGENT_KEY ")\n"
	      "      --no-tls           with --remote: QEMU's migration and the disk copy over plain TCP\n"
	      "                         (default: TLS with a key derived from the agent's session)\n"
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
	      "                         died (journals in /run/qemu-upgrade): finish or roll back\n"
	      "  -h, --help             this text\n"
	      "\n"
	      "Examples:\n"
	      "  qemu-upgrade --pid 1234 --new-binary /usr/bin/qemu-system-x86_64\n"
	      "  qemu-upgrade --pid 1234 --dry-run          # show the plan, touch nothing\n"
	      "  qemu-upgrade --pid 1234 --json             # for programs\n"
	      "  qemu-upgrade --all --dry-run              # which VMs a package upgrade left behind\n"
	      "  qemu-upgrade --pid 1234 --remote host2 --copy-storage   # move it to host2, disks too\n"
	      "  qemu-upgrade agent --listen 10.0.0.2:4779  # on host2, to receive VMs\n"
	      "  qemu-upgrade inspect --pid 1234           # the plan in words, as --dry-run\n"
	      "  qemu-upgrade check --binary /usr/bin/qemu-system-x86_64\n"
	      "  qemu-upgrade --pid 1234 --write-stream s.bin && qemu-upgrade dump-stream s.bin\n"
	      "\n"
	      "Exit status: 0 upgraded (or planned); 1 failed and rolled back (the old QEMU runs the\n"
	      "guest, also after Ctrl-C before the commit point); 2 error before anything was touched (bad usage or input, VM unreachable);\n"
	      "3 refused (the VM cannot be upgraded; it was not touched); 4 a low-memory (postcopy) upgrade, or a\n"
	      "--remote one, failed past the point of no return: not rolled back (the message says what\n"
	      "happened to the guest).\n",
	      f);
}

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

static int check_command(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "binary", required_argument, NULL, 'b' }, { "json", no_argument, NULL, 'j' },
		{ "remote", required_argument, NULL, 'r' }, { "remote-key", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },         { NULL, 0, NULL, 0 },
	};
	const char *binary = NULL, *remote = NULL, *remote_key = NULL;
	int json = 0, c;
	while ((c = getopt_long(argc, argv, "b:jr:h", opts, NULL)) != -1) {
		switch (c) {
		case 'b': binary = optarg; break;
		case 'j': json = 1; break;
		case 'r': remote = optarg; break;
		case 'k': remote_key = optarg; break;
		case 'h':
			printf("Usage: qemu-upgrade check [--binary PATH] [--remote HOST [--remote-key FILE]] [--json]\n"
			       "What this host offers qemu-upgrade (and, with --binary, what that QEMU does). With\n"
			       "--remote: whether the agent there answers and holds the same key, and what the QEMU\n"
			       "at PATH (default /usr/bin/qemu-system-x86_64) is there.\n");
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
	if (remote_key && !remote) {
		fprintf(stderr, "qemu-upgrade check: --remote-key goes with --remote HOST\n");
		return EXIT_USAGE;
	}
	int r = qu_check(binary, remote, remote_key, json ? QU_OUT_JSON : 0, stdout);
	if (r < 0)
		fprintf(stderr, "qemu-upgrade check: %s\n", qu_get_error());
	return r < 0 ? EXIT_USAGE : r ? EXIT_FAILED : EXIT_OK;
}

static int agent_command(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' }, { "key", required_argument, NULL, 'k' },
		{ "once", no_argument, NULL, 'o' },         { "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },         { NULL, 0, NULL, 0 },
	};
	const char *listen = "4779", *key = QU_AGENT_KEY;
	int once = 0, verbose = 1, c;
	while ((c = getopt_long(argc, argv, "l:k:ovh", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen = optarg; break;
		case 'k': key = optarg; break;
		case 'o': once = 1; break;
		case 'v': verbose++; break;
		case 'h':
			printf("Usage: qemu-upgrade agent [--listen [ADDR:]PORT] [--key FILE] [--once]\n"
			       "Receives VMs that `qemu-upgrade --pid PID --remote THIS-HOST` moves here: listens on\n"
			       "TCP (default: port 4779, every address), lets in only a tool holding the same key\n"
			       "(default " QU_AGENT_KEY ", mode 0600), and starts each new QEMU as the VM ran\n"
			       "on its old host. --once: serve one upgrade, then exit.\n");
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
	qu_set_log_level(verbose);
	if (qu_agent_run(listen, key, once ? QU_AGENT_ONCE : 0) < 0) {
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

int main(int argc, char **argv)
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
		{ "shared-storage", no_argument, NULL, 'S' + 256 }, { "no-tls", no_argument, NULL, 'T' + 256 },
		{ "max-downtime", required_argument, NULL, 'D' }, { "max-bandwidth", required_argument, NULL, 'W' + 256 },        { "help", no_argument, NULL, 'h' },           { "write-stream", required_argument, NULL, 'W' },           { NULL, 0, NULL, 0 },
	};
	int json = 0, verbose = 1, recover = 0, all = 0, from_hook = 0, jobs = 0, c;
	const char *all_binary = NULL;
	unsigned timeout_ms = 0, max_downtime = 0;
	unsigned long long max_bandwidth = 0;
	const char *stream_out = NULL, *remote = NULL, *remote_key = NULL;
	unsigned flags = 0;
	struct qu_handle *h;

	if (argc == 3 && !strcmp(argv[1], "dump-stream"))
		return dump_stream(argv[2]);
	if (argc >= 2 && !strcmp(argv[1], "check"))
		return check_command(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "agent"))
		return agent_command(argc - 1, argv + 1);
	/* `inspect` is --dry-run under its own name: read the VM and the plan, change nothing. */
	int inspect = argc >= 2 && !strcmp(argv[1], "inspect");
	if (inspect) {
		argv[1] = (char *)"--dry-run";
	}
	h = qu_new();
	if (!h)
		return EXIT_FAILED;
	pid_t pid = 0;
	while ((c = getopt_long(argc, argv, "p:b:q:njt:vhr:", opts, NULL)) != -1) {
		int r = 0;
		char *end;
		switch (c) {
		case 'p':
			if (parse_pid(optarg, &pid) < 0) {
				fprintf(stderr, "qemu-upgrade: --pid %s: not a process ID\n", optarg);
				goto usage_error;
			}
			r = qu_set_pid(h, pid);
			break;
		case 'b': r = qu_set_new_binary(h, optarg); break;
		case 'q': r = qu_set_qmp_socket(h, optarg); break;
		case 'n': flags |= QU_FLAG_DRY_RUN; break;
		case 'C': flags |= QU_FLAG_ALLOW_COPY; break;
		case 'L': flags |= QU_FLAG_LOW_MEMORY; break;
		case 'r': remote = optarg; break;
		case 'K': remote_key = optarg; break;
		case 'S': flags |= QU_FLAG_COPY_STORAGE; break;
		case 'S' + 256: flags |= QU_FLAG_SHARED_STORAGE; break;
		case 'T' + 256: flags |= QU_FLAG_NO_TLS; break;
		case 'j': json = 1; break;
		case 't': {
			double s = strtod(optarg, &end);
			if (*end || s <= 0 || s > 86400) {
				fprintf(stderr, "qemu-upgrade: --timeout %s: give seconds, e.g. --timeout 30\n", optarg);
				goto usage_error;
			}
			timeout_ms = (unsigned)(s * 1000);
			r = qu_set_timeout_ms(h, timeout_ms);
			break;
		}
		case 'v': verbose++; break;
		case 'Q': verbose = 0; break;
		case 'R': recover = 1; break;
		case 'A': all = 1; break;
		case 'H': all = from_hook = 1; break;
		case 'B': all_binary = optarg; break;
		case 'D': {
			long ms = strtol(optarg, &end, 10);
			if (*end || ms < 1 || ms > 60000) {
				fprintf(stderr, "qemu-upgrade: --max-downtime %s: give milliseconds, 1 to 60000\n", optarg);
				goto usage_error;
			}
			max_downtime = (unsigned)ms;
			break;
		}
		case 'W' + 256: {
			double mib = strtod(optarg, &end);
			if (*end || mib <= 0 || mib > 1e7) {
				fprintf(stderr, "qemu-upgrade: --max-bandwidth %s: give MiB/s, e.g. 1000\n", optarg);
				goto usage_error;
			}
			max_bandwidth = (unsigned long long)(mib * 1048576.0);
			break;
		}
		case 'J':
			jobs = (int)strtol(optarg, &end, 10);
			if (*end || jobs < 1 || jobs > 64) {
				fprintf(stderr, "qemu-upgrade: --jobs %s: give a number from 1 to 64\n", optarg);
				goto usage_error;
			}
			break;
		case 'W': stream_out = optarg; flags |= QU_FLAG_DRY_RUN; break;
		case 'h': usage(stdout); qu_free(h); return EXIT_OK;
		default: goto usage_error;
		}
		if (r < 0) {
			fprintf(stderr, "qemu-upgrade: %s\n", qu_get_error());
			goto usage_error;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "qemu-upgrade: unexpected argument '%s'\n", argv[optind]);
		goto usage_error;
	}
	qu_set_log_level(verbose);
	if (!remote && (remote_key || (flags & (QU_FLAG_COPY_STORAGE | QU_FLAG_SHARED_STORAGE | QU_FLAG_NO_TLS)))) {
		fprintf(stderr, "qemu-upgrade: --copy-storage, --shared-storage, --no-tls and --remote-key go with --remote HOST\n");
		goto usage_error;
	}
	if (remote && (all || recover)) {
		fprintf(stderr, "qemu-upgrade: --remote moves one VM: give --pid PID, without --all or --recover\n");
		goto usage_error;
	}
	if (remote && qu_set_remote(h, remote, remote_key) < 0) {
		fprintf(stderr, "qemu-upgrade: --remote %s: %s\n", remote, qu_get_error());
		goto usage_error;
	}
	if ((all_binary || jobs) && !all) {
		fprintf(stderr, "qemu-upgrade: --binary and --jobs go with --all\n");
		goto usage_error;
	}
	if (all) {
		if (pid || recover) {
			fprintf(stderr, "qemu-upgrade: --all upgrades every replaced VM; it takes no --pid or --recover\n");
			goto usage_error;
		}
		unsigned all_flags = (flags & (QU_FLAG_DRY_RUN | QU_FLAG_ALLOW_COPY | QU_FLAG_LOW_MEMORY)) |
				     (json ? QU_OUT_JSON : 0) | (from_hook ? QU_ALL_FROM_HOOK : 0);
		qu_free(h);
		install_signal_handlers();
		int rc = qu_upgrade_all(all_binary, (unsigned)jobs, timeout_ms, all_flags, stdout);
		if (rc < 0)
			fprintf(stderr, "qemu-upgrade: %s\n", qu_get_error());
		/* A package manager must never fail because of us: the summary went to syslog. */
		return from_hook ? EXIT_OK : rc < 0 ? EXIT_USAGE : rc;
	}
	if (recover) {
		if (pid) {
			fprintf(stderr, "qemu-upgrade: --recover settles every interrupted upgrade; it takes no --pid\n");
			goto usage_error;
		}
		qu_free(h);
		int n = qu_recover(stdout);
		if (n < 0) {
			fprintf(stderr, "qemu-upgrade: %s\n", qu_get_error());
			return EXIT_FAILED;
		}
		if (n == 0)
			printf("nothing to recover\n");
		return EXIT_OK;
	}
	if (!pid) {
		fprintf(stderr, "qemu-upgrade: which VM? Give --pid PID (see --help)\n");
		goto usage_error;
	}
	install_signal_handlers();
	if (qu_set_flags(h, flags | QU_FLAG_DROP_PRIVILEGES) < 0) {
		fprintf(stderr, "qemu-upgrade: %s\n", qu_get_error());
		goto usage_error;
	}
	qu_set_copy_limits(h, max_downtime, max_bandwidth);
	progress_json = json;
	if (json || isatty(STDERR_FILENO) || verbose > 1)
		qu_set_progress(h, show_progress, NULL);
	int r = qu_upgrade(h), rc = EXIT_OK;
	if (progress_shown && !json)
		fputc('\n', stderr);
	const char *result = qu_get_result(h);
	if (r < 0) {
		int e = qu_get_errno();
		fprintf(stderr, "qemu-upgrade: %s\n", qu_get_error());
		if (e == EOPNOTSUPP)
			rc = EXIT_REFUSED;
		else if (result && !strcmp(result, "unsettled"))
			rc = EXIT_UNSETTLED;
		else
			rc = qu_was_touched(h) ? EXIT_FAILED : EXIT_USAGE;
	}
	if (r == 0 && stream_out) {
		int fd = open(stream_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || qu_write_stream(h, fd) < 0) {
			fprintf(stderr, "qemu-upgrade: cannot write the stream to %s: %s\n", stream_out,
				fd < 0 ? strerror(errno) : qu_get_error());
			rc = EXIT_USAGE; /* nothing was touched: a bad path */
		}
		if (fd >= 0)
			close(fd);
	}
	if (result) {
		if (json)
			printf("%s\n", qu_get_report_json(h));
		else
			qu_print_report(h, stdout);
	}
	qu_free(h);
	return rc;
usage_error:
	qu_free(h);
	fprintf(stderr, "Try 'qemu-upgrade --help'.\n");
	return EXIT_USAGE;
}
