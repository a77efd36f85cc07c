/* `--remote ssh://[USER@]HOST[:PORT]`: the destination as the operator wrote it, read strictly,
 * since its parts become arguments of ssh: a user or host that could be taken for an option
 * (a leading '-'), or that holds anything but the characters of a name or an address, is
 * refused before ssh runs. */
#ifndef QU_REMOTE_SSH_URI_H
#define QU_REMOTE_SSH_URI_H

#define QU_SSH_SCHEME "ssh://"
#define QU_SSH_URI_MAX 255  /* the whole URI (it fits where a HOST:PORT did) */
#define QU_SSH_USER_MAX 32  /* a Linux user name */
#define QU_SSH_HOST_MAX 253 /* a DNS name */

struct qu_ssh_uri {
	char user[QU_SSH_USER_MAX + 1]; /* "" when none: ssh's own default */
	char host[QU_SSH_HOST_MAX + 1]; /* a name, an IPv4 address, or an IPv6 address without brackets */
	int port;                       /* 0 when none: ssh's own default */
	int ipv6;                       /* host is an IPv6 address (it was in brackets) */
};

/* 1 when s names the ssh transport (it starts with ssh://), else 0. */
int qu_ssh_uri_is(const char *s);
/* Reads ssh://[USER@]HOST[:PORT] (HOST: a name, an IPv4 address or [IPV6]) into u: 0, or
 * -EINVAL / -ENAMETOOLONG with a message that names the part at fault. */
int qu_ssh_uri_parse(const char *s, struct qu_ssh_uri *u);

#endif
