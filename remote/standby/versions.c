#include "remote/standby/versions.h"

#include <stdio.h>

/* What was measured, by version range (inclusive), first match wins. */
struct measured {
	int from[3], to[3];
	const char *why; /* NULL: COLO works */
};

static const struct measured table[] = {
	{ { 11, 1, 0 }, { 11, 1, 999 }, NULL },
	{ { 10, 0, 7 }, { 10, 0, 999 },
	  "COLO's secondary aborts loading the first checkpoint (memory_region_add_subregion_common "
	  "assertion in ICH9LPC's post_load, measured on 10.0.13) and the primary's monitor hangs with "
	  "its guest frozen" },
	{ { 10, 0, 0 }, { 10, 0, 6 },
	  "an x-colo migration ends as a plain migration: the primary pauses in postmigrate and the "
	  "secondary leaves COLO (QEMU commit 4881411136, fixed in 10.0.7 and upstream 0b5bf4ea76; "
	  "measured on 10.0.2)" },
	{ { 7, 2, 0 }, { 7, 2, 999 },
	  "COLO's secondary aborts loading the first checkpoint (memory_region_add_subregion_common "
	  "assertion in ICH9LPC's post_load) and the primary's monitor hangs with its guest frozen; "
	  "on -machine pc the secondary's memory was corrupt (TCG dirty tracking before QEMU 9.0)" },
};

static int cmp(const int a[3], const int b[3])
{
	for (int i = 0; i < 3; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return 0;
}

const char *qu_standby_version_refusal(const int ver[3])
{
	static __thread char why[512];
	const char *reason = "COLO was not tested on this version";
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (cmp(ver, table[i].from) >= 0 && cmp(ver, table[i].to) <= 0) {
			if (!table[i].why)
				return NULL;
			reason = table[i].why;
			break;
		}
	snprintf(why, sizeof(why),
		 "QEMU %d.%d.%d cannot be protected: %s; standby runs on QEMU 11.1 only (both hosts the same "
		 "binary): upgrade the VM to 11.1 first (qemu-upgrade --pid PID --new-binary QEMU-11.1)",
		 ver[0], ver[1], ver[2], reason);
	return why;
}
