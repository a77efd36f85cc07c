#include "remote/x509/creds.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PEM_MAX (64 * 1024)

void qu_x509_error(char *buf, size_t len, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	if (e) {
		char s[256];
		ERR_error_string_n(e, s, sizeof(s));
		/* "error:0A000086:SSL routines::certificate verify failed": the reason is the tail. */
		const char *reason = strrchr(s, ':');
		snprintf(buf, len, "%s", reason && reason[1] ? reason + 1 : s);
	} else {
		snprintf(buf, len, "%s", what);
	}
	ERR_clear_error();
}

void qu_x509_describe(X509 *cert, char *buf, size_t len)
{
	char subject[256] = "";
	size_t n;
	X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
	snprintf(buf, len, "subject %s", subject);
	GENERAL_NAMES *alt = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; alt && i < sk_GENERAL_NAME_num(alt); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(alt, i);
		n = strlen(buf);
		if (g->type == GEN_DNS)
			snprintf(buf + n, len - n, "%sDNS:%.*s", i ? "," : ", subjectAltName ",
				 ASN1_STRING_length(g->d.dNSName), (const char *)ASN1_STRING_get0_data(g->d.dNSName));
		else if (g->type == GEN_IPADD && ASN1_STRING_length(g->d.iPAddress) == 4) {
			const unsigned char *a = ASN1_STRING_get0_data(g->d.iPAddress);
			snprintf(buf + n, len - n, "%sIP:%u.%u.%u.%u", i ? "," : ", subjectAltName ", a[0], a[1], a[2], a[3]);
		}
	}
	GENERAL_NAMES_free(alt);
}

/* The file name in dir, read after checking it is root's and written (with secret: read) by
 * root alone. A BIO over its text, or NULL with a message. */
static BIO *read_checked(const char *dir, const char *name, int secret, char *path, size_t plen)
{
	struct stat st;
	snprintf(path, plen, "%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		qu_err(-errno, "cannot read %s: %s (docs/remote.md, \"The TLS agent\", says how to make the "
		       "certificates; --pki-dir names another directory)", path, strerror(errno));
		return NULL;
	}
	const char *bad = NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		bad = "is not a regular file";
	else if (st.st_uid != 0)
		bad = "is not root's (chown root)";
	else if (st.st_mode & 022)
		bad = "can be written by others than root (chmod go-w): whoever can is root through the agent";
	else if (secret && (st.st_mode & 077))
		bad = "is a private key that others than root can read (chmod 600)";
	else if (st.st_size > PEM_MAX)
		bad = "is larger than a PEM file of certificates or a key can be";
	if (bad) {
		close(fd);
		qu_err(-EPERM, "%s %s", path, bad);
		return NULL;
	}
	char *text = malloc(PEM_MAX);
	ssize_t n = text ? qu_read_full(fd, text, PEM_MAX) : -ENOMEM;
	close(fd);
	BIO *b = n >= 0 ? BIO_new_mem_buf(text, (int)n) : NULL;
	if (!b) {
		free(text);
		qu_err(n < 0 ? (int)n : -ENOMEM, "cannot read %s", path);
		return NULL;
	}
	/* The BIO reads text in place: a copy it owns keeps it alive with it. */
	BIO *copy = BIO_new(BIO_s_mem());
	char *data;
	long got = BIO_get_mem_data(b, &data);
	if (!copy || BIO_write(copy, data, (int)got) != got) {
		BIO_free(copy);
		copy = NULL;
		qu_err(-ENOMEM, "out of memory reading %s", path);
	}
	BIO_free(b);
	explicit_bzero(text, PEM_MAX);
	free(text);
	return copy;
}

static int fail(const char *path, const char *what)
{
	char why[256];
	qu_x509_error(why, sizeof(why), "no PEM data");
	return qu_err(-EINVAL, "%s: %s (%s)", path, what, why);
}

/* The CA: every certificate in ca-cert.pem is trusted, and nothing else (no system store). */
static int load_ca(SSL_CTX *ctx, const char *dir)
{
	char path[4200];
	BIO *b = read_checked(dir, "ca-cert.pem", 0, path, sizeof(path));
	if (!b)
		return -1;
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	X509 *c;
	int n = 0;
	while ((c = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		n += X509_STORE_add_cert(store, c) == 1;
		X509_free(c);
	}
	ERR_clear_error(); /* the end of the file reads as an error */
	BIO_free(b);
	return n ? 0 : fail(path, "holds no CA certificate");
}

static int load_own(SSL_CTX *ctx, const char *dir, const char *who)
{
	char path[4200], name[32];
	snprintf(name, sizeof(name), "%s-cert.pem", who);
	BIO *b = read_checked(dir, name, 0, path, sizeof(path));
	if (!b)
		return -1;
	X509 *c = PEM_read_bio_X509(b, NULL, NULL, NULL);
	int r = c && SSL_CTX_use_certificate(ctx, c) == 1 ? 0 : fail(path, "is not a PEM certificate");
	X509_free(c);
	/* Intermediate certificates after it go with it. */
	while (r == 0 && (c = PEM_read_bio_X509(b, NULL, NULL, NULL)))
		if (SSL_CTX_add0_chain_cert(ctx, c) != 1) {
			X509_free(c);
			r = fail(path, "has a chain certificate OpenSSL refuses");
		}
	ERR_clear_error();
	BIO_free(b);
	if (r < 0)
		return r;
	snprintf(name, sizeof(name), "%s-key.pem", who);
	if (!(b = read_checked(dir, name, 1, path, sizeof(path))))
		return -1;
	EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	if (!k)
		return fail(path, "is not a PEM private key without a passphrase");
	r = SSL_CTX_use_PrivateKey(ctx, k) == 1 && SSL_CTX_check_private_key(ctx) == 1 ? 0
		: fail(path, "is not the key of the certificate beside it");
	EVP_PKEY_free(k);
	return r;
}

SSL_CTX *qu_x509_ctx(const char *dir, int agent)
{
	if (!dir)
		dir = QU_PKI_DIR;
	if (strlen(dir) > 4000) {
		qu_err(-ENAMETOOLONG, "the certificate directory name is too long");
		return NULL;
	}
	SSL_CTX *ctx = SSL_CTX_new(agent ? TLS_server_method() : TLS_client_method());
	if (!ctx) {
		qu_err(-ENOMEM, "cannot make a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, 0); /* the newest there is */
	/* The peer's certificate is required, both ways. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	/* One connection per move: nothing to resume, no tickets to write. */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (load_ca(ctx, dir) < 0 || load_own(ctx, dir, agent ? "server" : "client") < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}
