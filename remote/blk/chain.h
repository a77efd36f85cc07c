/* --copy-storage-inc: only a disk's top image moves, onto a new top on the other host whose
 * backing files are the same files at the same paths there. Before anything is made, each
 * backing file is described on both hosts the same way (these facts) and compared: a chain
 * that differs is refused with the file and the difference named. */
#ifndef QU_REMOTE_CHAIN_H
#define QU_REMOTE_CHAIN_H

#include "upgrade/fdpass/asuser.h"

#include <stdint.h>
#include <sys/types.h>

#define QU_DIGEST_HEX 65

struct qu_file_fact {
	unsigned long long size; /* the file's length */
	char format[16];         /* from its header's magic: qcow2, qed, vmdk, vdi, vhdx, luks or raw */
	char sum[QU_DIGEST_HEX]; /* SHA-256 of its allocated data (below), hex */
	/* Identity when it was read, so that a file changed since is noticed. */
	dev_t dev;
	ino_t ino;
	long long mtime_ns;
};

/* Describes the file at path (absolute) as `who`: the path walked without following a link
 * another user could have made (upgrade/safepath.h), the file read as that user. The sum
 * covers the data of every 64 KiB block the file has allocated (SEEK_DATA), each block with its
 * offset; blocks of zeros count as holes, so that a sparse copy and a full one of the same bytes
 * agree. 0, or -errno with a message naming the file. */
int qu_chain_fact(const struct qu_ident *who, const char *path, struct qu_file_fact *f);

/* Only the identity (device, inode, size, mtime) of the file at path, read as `who` the same
 * way: cheap, to notice a file changed since it was described. */
int qu_chain_stat(const struct qu_ident *who, const char *path, struct qu_file_fact *f);

/* The differences between two facts of one file, as text ("" when none). */
void qu_chain_compare(const struct qu_file_fact *here, const struct qu_file_fact *there, char *why, size_t len);

/* kv text <-> facts (size=, format=, sum=), for the agent's answer. */
void qu_chain_fact_put(const struct qu_file_fact *f, char *text, size_t len);
int qu_chain_fact_get(const char *text, struct qu_file_fact *f);

#endif
