/* Why an upgrade cannot go ahead: every reason found, not only the first, so that an operator
 * who fixes one blocker does not meet the next one on the following try. Each reason is one
 * sentence that names the problem and says what to do. */
#ifndef QU_REFUSALS_H
#define QU_REFUSALS_H

#define QU_MAX_REFUSALS 16
#define QU_REFUSAL_LEN 1024

struct qu_refusals {
	unsigned n;                               /* reasons held in why[0..n-1]; 0: not refused */
	unsigned more;                            /* reasons found once why[] was full: counted only */
	char why[QU_MAX_REFUSALS][QU_REFUSAL_LEN];
};

/* Adds a reason; one already held (the same text) is not added twice. */
void qu_refusals_add(struct qu_refusals *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Every reason found, those past QU_MAX_REFUSALS included. */
unsigned qu_refusals_count(const struct qu_refusals *r);
/* Forgets every reason past the first keep. */
void qu_refusals_keep(struct qu_refusals *r, unsigned keep);
/* The reasons held, joined by sep, with "(N more)" for those not held: a new string, "" when
 * there are none, NULL when out of memory. */
char *qu_refusals_join(const struct qu_refusals *r, const char *sep);

#endif
