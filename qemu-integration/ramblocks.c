#include "qemu-integration/ramblocks.h"
#include "qemu-integration/qmp.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int qu_ramblocks_parse(const char *text, struct qu_ramblock *b, size_t max)
{
	size_t n = 0;
	int header = 0, overflow = 0;
	const char *line = text;
	while (line && *line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char buf[512], name[128], unit[16];
		unsigned psize;
		uint64_t offset, used, total;
		snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) ? len : sizeof(buf) - 1), line);
		if (strstr(buf, "Block Name"))
			header = 1;
		else if (sscanf(buf, "%127s %u %15s %" SCNx64 " %" SCNx64 " %" SCNx64, name, &psize, unit, &offset,
				&used, &total) == 6 && (n < max || !(overflow = 1))) {
			snprintf(b[n].name, sizeof(b[n].name), "%s", name);
			b[n].used = used;
			b[n].total = total;
			n++;
		}
		line = end ? end + 1 : NULL;
	}
	/* A table longer than max would leave blocks unchecked: say so rather than pass. */
	if (header && overflow)
		return -E2BIG;
	return header ? (int)n : -EBADMSG;
}

static void size_text(uint64_t v, char *buf, size_t len)
{
	if (v >= (1ull << 20) && !(v & ((1ull << 20) - 1)))
		snprintf(buf, len, "%" PRIu64 " MiB", v >> 20);
	else
		snprintf(buf, len, "%" PRIu64 " KiB", v >> 10);
}

int qu_ramblocks_compare(const struct qu_ramblock *old, size_t nold, const struct qu_ramblock *new_,
			 size_t nnew, char *why, size_t len)
{
	for (size_t i = 0; i < nold; i++) {
		const struct qu_ramblock *o = &old[i], *n = NULL;
		char a[32], b[32];
		for (size_t k = 0; k < nnew && !n; k++)
			if (!strcmp(new_[k].name, o->name))
				n = &new_[k];
		if (!n) {
			snprintf(why, len, "the new QEMU has no RAM block '%s' (a device or ROM of the running VM "
				 "that the new binary does not create)", o->name);
			return -EINVAL;
		}
		/* A resizable block takes any size up to its maximum; a fixed one only its own.
		 * `info ramblock` shows no flag: a block whose maximum exceeds its size is
		 * resizable, and so are the firmware configuration blobs (/rom@etc/...), which may
		 * sit at their maximum. */
		int resizable = n->total > n->used || !strncmp(n->name, "/rom@etc/", 9);
		if ((resizable && o->used > n->total) || (!resizable && o->used != n->used)) {
			size_text(o->used, a, sizeof(a));
			size_text(resizable ? n->total : n->used, b, sizeof(b));
			snprintf(why, len, "RAM block '%s' is %s in the running VM but %s%s in the new QEMU: QEMU cannot "
				 "migrate between firmware or ROM files of different sizes; give the new QEMU the old "
				 "file (-bios, a device's romfile=) or restart the VM", o->name, a,
				 resizable ? "at most " : "", b);
			return -EINVAL;
		}
	}
	return 0;
}

int qu_ramblocks_query(struct qu_qmp *q, uint64_t deadline_us, struct qu_ramblock *b, size_t max)
{
	json_object *args = json_object_new_object(), *ret = NULL;
	json_object_object_add(args, "command-line", json_object_new_string("info ramblock"));
	int r = qu_qmp_execute(q, "human-monitor-command", args, -1, deadline_us, &ret);
	if (r < 0)
		return r;
	r = qu_ramblocks_parse(qu_json_str(ret), b, max);
	json_object_put(ret);
	return r;
}

int qu_ramblocks_pack(const struct qu_ramblock *b, size_t n, char *out, size_t len)
{
	size_t used = 0;
	if (len)
		out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (strpbrk(b[i].name, ";\n"))
			return -EINVAL;
		int w = snprintf(out + used, len - used, "%s%s:%llu:%llu", i ? ";" : "", b[i].name,
				 (unsigned long long)b[i].used, (unsigned long long)b[i].total);
		if (w < 0 || (size_t)w >= len - used)
			return -ENOSPC;
		used += (size_t)w;
	}
	return 0;
}

int qu_ramblocks_unpack(const char *text, struct qu_ramblock *b, size_t max)
{
	size_t n = 0;
	for (const char *p = text; *p && n < max;) {
		const char *end = strchr(p, ';');
		size_t l = end ? (size_t)(end - p) : strlen(p);
		char item[sizeof(b->name) + 48];
		if (l >= sizeof(item))
			return -EBADMSG;
		memcpy(item, p, l);
		item[l] = '\0';
		/* The numbers are the last two fields; the name is all before them. */
		char *c2 = strrchr(item, ':'), *c1;
		if (!c2)
			return -EBADMSG;
		*c2 = '\0';
		if (!(c1 = strrchr(item, ':')))
			return -EBADMSG;
		*c1 = '\0';
		char *e1, *e2;
		unsigned long long used = strtoull(c1 + 1, &e1, 10), total = strtoull(c2 + 1, &e2, 10);
		if (*e1 || *e2 || !item[0] || strlen(item) >= sizeof(b->name))
			return -EBADMSG;
		snprintf(b[n].name, sizeof(b[n].name), "%s", item);
		b[n].used = used;
		b[n].total = total;
		n++;
		p = end ? end + 1 : p + l;
	}
	return (int)n;
}
