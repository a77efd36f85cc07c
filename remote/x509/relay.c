#include "remote/x509/relay.h"
#include "remote/x509/creds.h"
#include "upgrade/clock.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int qu_x509_handshake(SSL *ssl, int agent, uint64_t deadline_us, char *why, size_t len)
{
	int fd = SSL_get_fd(ssl);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	for (;;) {
		ERR_clear_error();
		int r = agent ? SSL_accept(ssl) : SSL_connect(ssl);
		if (r == 1)
			return 0;
		int e = SSL_get_error(ssl, r);
		short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
		if (!ev) {
			long v = SSL_get_verify_result(ssl);
			qu_x509_error(why, len, e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN ?
				      "the peer closed the connection" : "TLS error");
			if (v != X509_V_OK) {
				size_t n = strlen(why);
				snprintf(why + n, len - n, ": %s", X509_verify_cert_error_string(v));
			}
			return -EPROTO;
		}
		int p = qu_poll_one(fd, ev, deadline_us);
		if (p < 0) {
			snprintf(why, len, "%s", p == -ETIMEDOUT ? "the handshake did not finish in time" : strerror(-p));
			return p;
		}
	}
}

/* Bytes one side gave that the other did not take yet. */
struct pending {
	unsigned char buf[16384];
	size_t len, off;
};

static int took(struct pending *p, size_t n)
{
	p->off += n;
	if (p->off == p->len)
		p->len = p->off = 0;
	return 1;
}

/* 0 (progress), or the poll events the call waits for. */
static short wants(SSL *ssl, int r, int *dead)
{
	int e = SSL_get_error(ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		return POLLIN;
	if (e == SSL_ERROR_WANT_WRITE)
		return POLLOUT;
	*dead = 1;
	return 0;
}

/* TLS -> plain and plain -> TLS until the plain side ends. When the TLS side ends (the peer
 * closed, or broke the connection) what it sent is delivered, the plain side is told by a
 * shutdown of our writing half, and what it still says is dropped. */
void qu_x509_relay(SSL *ssl, int tcp, int plain, int tool)
{
	/* One relay per process: its buffers need not live on the stack. up: TLS -> plain. */
	static struct pending up, down;
	int tls_in = 1, tls_out = 1, plain_in = 1, shut = 0;
	unsigned long long received = 0;
	fcntl(plain, F_SETFL, fcntl(plain, F_GETFL) | O_NONBLOCK);
	for (;;) {
		short tev, pev, w;
		int progress;
		do {
			progress = tev = pev = 0;
			if (tls_in && !up.len) {
				ERR_clear_error();
				int n = SSL_read(ssl, up.buf, sizeof(up.buf));
				if (n > 0) {
					up.len = (size_t)n;
					received += (unsigned)n;
					progress = 1;
				} else if ((w = wants(ssl, n, &progress))) {
					tev |= w;
				} else {
					tls_in = 0;
					/* Refused before anything came: the tool hears why, as the agent's
					 * answer (a whole record: nothing else came). */
					if (tool && !received) {
						char why[256], msg[400];
						qu_x509_error(why, sizeof(why), "the connection ended");
						snprintf(msg, sizeof(msg), "TLS: the agent ended the connection (%s): does "
							 "it trust this host's CA, and name this host's certificate in "
							 "agent_tls_clients? Its log says which", why);
						fcntl(plain, F_SETFL, fcntl(plain, F_GETFL) & ~O_NONBLOCK);
						qu_stream_send_error(plain, EACCES, msg);
						fcntl(plain, F_SETFL, fcntl(plain, F_GETFL) | O_NONBLOCK);
					}
				}
			}
			if (up.len) {
				ssize_t wr = write(plain, up.buf + up.off, up.len - up.off);
				if (wr > 0)
					progress = took(&up, (size_t)wr);
				else if (wr < 0 && (errno == EAGAIN || errno == EINTR))
					pev |= POLLOUT;
				else
					up.len = up.off = 0, tls_in = 0, progress = 1; /* the plain side is gone */
			}
			if (!tls_in && !up.len && !shut) {
				shutdown(plain, SHUT_WR);
				shut = 1;
			}
			if (plain_in && !down.len) {
				ssize_t n = read(plain, down.buf, sizeof(down.buf));
				if (n > 0)
					down.len = tls_out ? (size_t)n : 0, progress = 1;
				else if (n < 0 && (errno == EAGAIN || errno == EINTR))
					pev |= POLLIN;
				else
					plain_in = 0, progress = 1;
			}
			if (down.len) {
				ERR_clear_error();
				int n = SSL_write(ssl, down.buf + down.off, (int)(down.len - down.off));
				if (n > 0)
					progress = took(&down, (size_t)n);
				else if ((w = wants(ssl, n, &progress)))
					tev |= w;
				else
					tls_out = 0, down.len = down.off = 0;
			}
			if (!plain_in && !down.len) {
				/* The plain side ended: the peer hears a clean close. */
				if (tls_out && SSL_shutdown(ssl) == 0)
					qu_poll_one(tcp, POLLOUT, qu_now_us() + 1000000u);
				return;
			}
		} while (progress);
		struct pollfd pf[2] = { { .fd = tev ? tcp : -1, .events = tev }, { .fd = pev ? plain : -1, .events = pev } };
		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			return;
	}
}

/* Closes every descriptor from 3 up but a and b. */
void qu_x509_close_others(int a, int b)
{
	int lo = a < b ? a : b, hi = a < b ? b : a;
	if (lo > 3)
		close_range(3, (unsigned)lo - 1, 0);
	if (hi > lo + 1 && hi - 1 >= 3)
		close_range(lo + 1 > 3 ? (unsigned)lo + 1 : 3, (unsigned)hi - 1, 0);
	close_range((unsigned)hi + 1 > 3 ? (unsigned)hi + 1 : 3, ~0u, 0);
}

int qu_x509_relay_start(SSL *ssl, int tcp, int tool, pid_t *pid)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return qu_err(-errno, "socketpair: %s", strerror(errno));
	*pid = fork();
	if (*pid < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		return qu_err(-e, "fork: %s", strerror(e));
	}
	if (*pid == 0) {
		signal(SIGPIPE, SIG_IGN);
		signal(SIGINT, SIG_IGN); /* the tool's Ctrl-C is the tool's: it hangs up itself */
		qu_x509_close_others(tcp, sv[1]);
		qu_x509_relay(ssl, tcp, sv[1], tool);
		_exit(0);
	}
	close(sv[1]);
	SSL_free(ssl); /* the relay's now: no close_notify from here */
	close(tcp);
	return sv[0];
}

void qu_x509_relay_stop(pid_t pid, uint64_t deadline_us)
{
	int status;
	if (pid <= 0)
		return;
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0 || qu_poll_one(pfd, POLLIN, deadline_us) < 0)
		kill(pid, SIGKILL);
	if (pfd >= 0)
		close(pfd);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}
