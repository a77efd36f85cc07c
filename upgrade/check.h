/* `qemu-upgrade check`: what this host and a QEMU binary offer, each line yes/no and why it
 * matters, in the spirit of `criu check`. */
#ifndef QU_CHECK_H
#define QU_CHECK_H

#include <stdio.h>

/* binary: a QEMU to probe too (NULL: none). Returns 0 when everything the zero-copy upgrade
 * needs is there, 1 otherwise. */
int qu_check(const char *binary, int json, FILE *out);

#endif
