#include "qemu-integration/refusals.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qu_refusals_add(struct qu_refusals *r, const char *fmt, ...)
{
	char why[QU_REFUSAL_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	/* Two checks may find the same thing (the same option seen twice): say it once. */
	for (unsigned i = 0; i < r->n; i++)
		if (!strcmp(r->why[i], why))
			return;
	if (r->n == QU_MAX_REFUSALS) {
		r->more++;
		return;
	}
	memcpy(r->why[r->n++], why, sizeof(why));
}

unsigned qu_refusals_count(const struct qu_refusals *r)
{
	return r->n + r->more;
}

void qu_refusals_keep(struct qu_refusals *r, unsigned keep)
{
	if (keep >= qu_refusals_count(r))
		return;
	if (r->n > keep)
		r->n = keep;
	r->more = keep - r->n;
}

char *qu_refusals_join(const struct qu_refusals *r, const char *sep)
{
	size_t len = 1 + 32;
	for (unsigned i = 0; i < r->n; i++)
		len += strlen(r->why[i]) + strlen(sep);
	char *out = malloc(len), *p = out;
	if (!out)
		return NULL;
	*p = '\0';
	for (unsigned i = 0; i < r->n; i++)
		p += sprintf(p, "%s%s", i ? sep : "", r->why[i]);
	if (r->more)
		sprintf(p, "%s(%u more)", sep, r->more);
	return out;
}
