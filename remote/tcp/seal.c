#include "remote/tcp/seal.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>

static int seal_mac(struct qu_sealer *base, int sending, const uint8_t *rec, size_t len, uint8_t out[QU_SEAL_MAC_LEN])
{
	struct qu_seal *s = (struct qu_seal *)base;
	/* Which way the record goes, so that one sent by a side is never taken back by it. */
	int from_tool = sending ? s->tool : !s->tool;
	uint64_t seq = s->seq[sending]++;
	uint8_t head[12] = { 'q', 'u', from_tool ? 't' : 'a', '>' };
	for (int i = 0; i < 8; i++)
		head[4 + i] = (uint8_t)(seq >> (8 * i));
	size_t n = 0;
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0), OSSL_PARAM_construct_end() };
	int ok = ctx && EVP_MAC_init(ctx, s->key, sizeof(s->key), params) && EVP_MAC_update(ctx, head, sizeof(head)) &&
		 EVP_MAC_update(ctx, rec, len) && EVP_MAC_final(ctx, out, &n, QU_SEAL_MAC_LEN) && n == QU_SEAL_MAC_LEN;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return ok ? 0 : -EIO;
}

int qu_seal_init(struct qu_seal *s, const unsigned char *key, size_t keylen, const char *agent_nonce,
		 const char *tool_nonce, int tool)
{
	char msg[256];
	unsigned int n = 0;
	int len = snprintf(msg, sizeof(msg), "qemu-upgrade:session:%s:%s", agent_nonce, tool_nonce);
	memset(s, 0, sizeof(*s));
	s->base.mac = seal_mac;
	s->tool = tool;
	if (len < 0 || (size_t)len >= sizeof(msg) ||
	    !HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, (size_t)len, s->key, &n) ||
	    n != sizeof(s->key))
		return -EIO;
	return 0;
}

int qu_seal_psk(const struct qu_seal *s, struct qu_psk *psk)
{
	static const char label[] = "qemu-upgrade:tls";
	unsigned int n = 0;
	if (!HMAC(EVP_sha256(), s->key, sizeof(s->key), (const unsigned char *)label, sizeof(label) - 1, psk->key, &n) ||
	    n != sizeof(psk->key))
		return -EIO;
	return 0;
}
