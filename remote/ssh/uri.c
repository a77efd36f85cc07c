#include "remote/ssh/uri.h"
#include "upgrade/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

static const char name_chars[] = "abcdefghijklmnopqrstuvwxyz"
				 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				 "0123456789";

int qu_ssh_uri_is(const char *s)
{
	return s && !strncmp(s, QU_SSH_SCHEME, strlen(QU_SSH_SCHEME));
}

/* A user name: letters, digits, '.', '_', '-', starting with a letter, digit or '_' (never
 * '-': it would be an option of ssh). */
static int user_ok(const char *s, size_t n)
{
	if (n == 0 || n > QU_SSH_USER_MAX || (!strchr(name_chars, s[0]) && s[0] != '_'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!s[i] || (!strchr(name_chars, s[i]) && !strchr("._-", s[i])))
			return 0;
	return 1;
}

/* A host name (RFC 1123 labels, '_' allowed for ssh_config aliases) or an IPv4 address:
 * starts with a letter or digit; no empty label; no label starting or ending with '-'. */
static int host_ok(const char *s, size_t n)
{
	if (n == 0 || n > QU_SSH_HOST_MAX || !strchr(name_chars, s[0]))
		return 0;
	size_t label = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!c || (!strchr(name_chars, c) && c != '-' && c != '_') || (label == 0 && c == '-') || ++label > 63)
			return 0;
	}
	return s[n - 1] != '-' && s[n - 1] != '.';
}

static int port_of(const char *s, int *port)
{
	long p = 0;
	size_t n = strlen(s);
	if (n == 0 || n > 5 || strspn(s, "0123456789") != n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		p = p * 10 + (s[i] - '0');
	if (p < 1 || p > 65535)
		return -EINVAL;
	*port = (int)p;
	return 0;
}

int qu_ssh_uri_parse(const char *s, struct qu_ssh_uri *u)
{
	static const char form[] = "give ssh://[USER@]HOST[:PORT], HOST a name, an IPv4 address or [IPV6]";
	memset(u, 0, sizeof(*u));
	if (!qu_ssh_uri_is(s))
		return qu_err(-EINVAL, "'%.64s' is not an ssh:// address: %s", s ? s : "", form);
	size_t total = strnlen(s, QU_SSH_URI_MAX + 1);
	if (total > QU_SSH_URI_MAX)
		return qu_err(-ENAMETOOLONG, "the ssh:// address is longer than %d bytes", QU_SSH_URI_MAX);
	const char *p = s + strlen(QU_SSH_SCHEME), *at = strchr(p, '@');
	if (at) {
		if (!user_ok(p, (size_t)(at - p)))
			return qu_err(-EINVAL, "the user in '%s' is not a user name (letters, digits, '.', '_', '-', "
				      "not starting with '-', at most %d): %s", s, QU_SSH_USER_MAX, form);
		memcpy(u->user, p, (size_t)(at - p));
		p = at + 1;
	}
	const char *end, *port = NULL;
	if (*p == '[') {
		/* [IPV6] or [IPV6]:PORT: the address as inet_pton reads it, nothing else. */
		const char *close = strchr(p, ']');
		size_t n = close ? (size_t)(close - p - 1) : 0;
		unsigned char bin[16];
		if (!close || n == 0 || n >= sizeof(u->host))
			return qu_err(-EINVAL, "'%s': an IPv6 address goes in brackets, [ADDRESS]: %s", s, form);
		memcpy(u->host, p + 1, n);
		u->host[n] = '\0';
		if (inet_pton(AF_INET6, u->host, bin) != 1)
			return qu_err(-EINVAL, "'%s': '%s' is not an IPv6 address: %s", s, u->host, form);
		u->ipv6 = 1;
		end = close + 1;
		if (*end == ':')
			port = end + 1;
		else if (*end)
			return qu_err(-EINVAL, "'%s': only :PORT may follow the address: %s", s, form);
	} else {
		const char *colon = strchr(p, ':');
		end = colon ? colon : p + strlen(p);
		if (!host_ok(p, (size_t)(end - p)))
			return qu_err(-EINVAL, "the host in '%s' is not a host name or an IPv4 address (letters, digits, "
				      "'.', '-', '_', starting with a letter or digit): %s", s, form);
		memcpy(u->host, p, (size_t)(end - p));
		if (colon)
			port = colon + 1;
	}
	if (port && port_of(port, &u->port) < 0)
		return qu_err(-EINVAL, "'%s': the port must be a number from 1 to 65535: %s", s, form);
	return 0;
}
