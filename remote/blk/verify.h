/* --verify: after the disk copy, and before the guest resumes on the other host, both hosts
 * sum what was copied, and the sums must agree (a difference rolls the move back). What a sum
 * covers: with the top layer alone moved (--copy-storage-inc), every 512-byte sector the top
 * image holds (as zero or as its bytes); with the whole disk moved, every sector the disk
 * reads as other than zeros, whichever image of its chain holds it. The sectors are found with
 * `qemu-img map` and read from the image files, as the VM's user. */
#ifndef QU_REMOTE_VERIFY_H
#define QU_REMOTE_VERIFY_H

#include "remote/blk/chain.h"
#include "upgrade/fdpass/asuser.h"

#include <stdint.h>

/* path/format: the disk's top image; chain[0..nchain-1]: its backing files, top down (what
 * qemu-img map calls depth 1, 2...; only read when !top_only). hex gets the SHA-256. */
int qu_verify_sum(const struct qu_ident *who, const char *path, const char *format, const char *const *chain,
		  int nchain, int top_only, uint64_t deadline_us, char hex[QU_DIGEST_HEX]);

#endif
