/* The x509 credentials of the TLS daemon transport (`agent --listen`, `--remote HOST`), in
 * libvirt's layout: DIR/ca-cert.pem (the CA both ends trust), DIR/server-cert.pem and
 * server-key.pem (the agent's), DIR/client-cert.pem and client-key.pem (the tool's); DIR is
 * /etc/pki/qemu-upgrade unless --pki-dir says otherwise. Every file must be root's (whoever
 * can change the CA or a certificate is root through the agent) and writable by root alone;
 * the keys readable by root alone too. A file that breaks the rule is refused by name. The
 * context made from them speaks TLS 1.3 only and requires the peer's certificate, signed by
 * the CA, both ways. */
#ifndef QU_REMOTE_X509_CREDS_H
#define QU_REMOTE_X509_CREDS_H

#include <openssl/ssl.h>
#include <stddef.h>

#define QU_PKI_DIR "/etc/pki/qemu-upgrade" /* as include/qemu-upgrade.h says */

/* The context for the agent (agent 1: server-*.pem) or the tool (client-*.pem), from dir (NULL:
 * QU_PKI_DIR). NULL with a message naming the file at fault. */
SSL_CTX *qu_x509_ctx(const char *dir, int agent);
/* OpenSSL's last error (its reason), or what if there is none; the error queue is cleared. */
void qu_x509_error(char *buf, size_t len, const char *what);
/* The names a certificate gives its holder, for messages: its subject and subjectAltNames. */
void qu_x509_describe(X509 *cert, char *buf, size_t len);

#endif
