/* `qemu-upgrade check`: what this host and a QEMU binary offer, each line yes/no and why it
 * matters, in the spirit of `criu check`. */
#ifndef QU_CHECK_H
#define QU_CHECK_H

#include <stdio.h>

/* binary: a QEMU to probe too (NULL: none). remote: an agent to reach with the key at
 * remote_key (NULL: the default) and ask about binary there (or the default path). Returns 0
 * when everything needed is there, 1 otherwise. */
int qu_check(const char *binary, const char *remote, const char *remote_key, int json, FILE *out);

#endif
