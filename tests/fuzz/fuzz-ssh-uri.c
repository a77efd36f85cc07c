/* What becomes ssh's arguments: `--remote ssh://[USER@]HOST[:PORT]` (remote/ssh/uri.c), and
 * the agent's SSH_CONNECTION (remote/ssh/stdio.c). A URI that parses has a user and a host
 * that no program can take for an option (no leading '-') and that hold only the characters
 * of a name or an address, a port in range, an IPv6 host that inet_pton reads; and written
 * back it parses to the same. An SSH_CONNECTION that parses gives an IP literal.
 * Input: one mode byte (bit 0: SSH_CONNECTION instead of a URI), then the text. */
#include "tests/fuzz/fuzz.h"
#include "remote/ssh/stdio.h"
#include "remote/ssh/uri.h"

#include <arpa/inet.h>

static int only(const char *s, const char *allowed)
{
	return strspn(s, allowed) == strlen(s);
}

static void uri(const char *text)
{
	static const char name[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
	struct qu_ssh_uri u, again;
	unsigned char bin[16];
	char back[QU_SSH_URI_MAX + 16];
	if (qu_ssh_uri_parse(text, &u) < 0)
		return;
	FUZZ_CHECK(strlen(text) <= QU_SSH_URI_MAX);
	FUZZ_CHECK(u.host[0] && u.host[0] != '-' && u.user[0] != '-');
	FUZZ_CHECK(only(u.user, name));
	FUZZ_CHECK(u.port >= 0 && u.port <= 65535);
	if (u.ipv6)
		FUZZ_CHECK(inet_pton(AF_INET6, u.host, bin) == 1);
	else
		FUZZ_CHECK(only(u.host, name));
	snprintf(back, sizeof(back), "ssh://%s%s%s%s%s", u.user, u.user[0] ? "@" : "", u.ipv6 ? "[" : "", u.host,
		 u.ipv6 ? "]" : "");
	if (u.port)
		snprintf(back + strlen(back), sizeof(back) - strlen(back), ":%d", u.port);
	FUZZ_CHECK(qu_ssh_uri_parse(back, &again) == 0);
	FUZZ_CHECK(!strcmp(u.user, again.user) && !strcmp(u.host, again.host) && u.port == again.port &&
		   u.ipv6 == again.ipv6);
}

static void connection(const char *text)
{
	char host[80];
	unsigned char bin[16];
	memset(host, 'X', sizeof(host));
	if (qu_ssh_server_addr(text, host, sizeof(host)) < 0)
		return;
	FUZZ_CHECK(memchr(host, '\0', sizeof(host)));
	if (host[0] == '[') {
		char *end = strchr(host, ']');
		FUZZ_CHECK(end && !end[1]);
		*end = '\0';
		FUZZ_CHECK(inet_pton(AF_INET6, host + 1, bin) == 1);
	} else {
		FUZZ_CHECK(inet_pton(AF_INET, host, bin) == 1);
	}
}

FUZZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char *text = fuzz_strdup(data + 1, size - 1);
	if (data[0] & 1)
		connection(text);
	else
		uri(text);
	free(text);
	return 0;
}
