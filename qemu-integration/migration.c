#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "qemu-integration/opts.h"
#include "upgrade/log.h"

#include <errno.h>

#include <stdio.h>
#include <string.h>

int qu_mig_get(struct qu_qmp *q, uint64_t deadline_us, struct qu_mig_settings *s)
{
	json_object *caps = NULL, *params = NULL, *v;
	int r = qu_qmp_query_list(q, "query-migrate-capabilities", deadline_us, &caps);
	if (r < 0)
		return r;
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < json_object_array_length(caps); i++) {
		json_object *c = json_object_array_get_idx(caps, i), *name, *state;
		if (!json_object_object_get_ex(c, "capability", &name) || !json_object_object_get_ex(c, "state", &state) ||
		    !json_object_get_string(name))
			continue;
		if (!strcmp(json_object_get_string(name), "x-ignore-shared"))
			s->ignore_shared = json_object_get_boolean(state);
		if (!strcmp(json_object_get_string(name), "events"))
			s->events = json_object_get_boolean(state);
		if (!strcmp(json_object_get_string(name), "postcopy-ram"))
			s->postcopy = json_object_get_boolean(state);
		if (!strcmp(json_object_get_string(name), "release-ram"))
			s->release_ram = json_object_get_boolean(state);
		if (!strcmp(json_object_get_string(name), "pause-before-switchover"))
			s->pause_switchover = json_object_get_boolean(state);
	}
	json_object_put(caps);
	r = qu_qmp_execute(q, "query-migrate-parameters", NULL, -1, deadline_us, &params);
	if (r < 0)
		return r;
	s->max_bandwidth = json_object_object_get_ex(params, "max-bandwidth", &v) ? json_object_get_int64(v) : -1;
	s->downtime_limit = json_object_object_get_ex(params, "downtime-limit", &v) ? json_object_get_int64(v) : -1;
	if (json_object_object_get_ex(params, "mode", &v))
		snprintf(s->mode, sizeof(s->mode), "%s", json_object_get_string(v));
	/* Read back as it is, so that a restore puts it back (usually "": no TLS). */
	s->tls_set = 1;
	if (json_object_object_get_ex(params, "tls-creds", &v))
		snprintf(s->tls_creds, sizeof(s->tls_creds), "%s", json_object_get_string(v));
	json_object_put(params);
	return 0;
}

int qu_mig_incoming(struct qu_qmp *q, const struct qu_mig_settings *s, const char *uri, uint64_t deadline_us)
{
	int r = qu_mig_set(q, s, deadline_us);
	if (r < 0)
		return r;
	json_object *args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string(uri));
	return qu_qmp_execute(q, "migrate-incoming", args, -1, deadline_us, NULL);
}

const char *const qu_mig_end[] = { "completed", "failed", "cancelled", NULL };

static unsigned long long member_u64(json_object *o, const char *name)
{
	json_object *v;
	long long n = json_object_object_get_ex(o, name, &v) ? json_object_get_int64(v) : 0;
	return n > 0 ? (unsigned long long)n : 0;
}

int qu_mig_query(struct qu_qmp *q, uint64_t deadline_us, struct qu_mig_status *s)
{
	json_object *mig = NULL, *v, *ram;
	*s = (struct qu_mig_status){ .downtime_ms = -1 };
	int r = qu_qmp_execute(q, "query-migrate", NULL, -1, deadline_us, &mig);
	if (r < 0)
		return r;
	/* A QEMU that never migrated answers {} (7.2): status none. */
	snprintf(s->status, sizeof(s->status), "%s",
		 json_object_object_get_ex(mig, "status", &v) ? qu_json_str(v) : "none");
	if (json_object_object_get_ex(mig, "error-desc", &v))
		qu_copy_printable(s->error, sizeof(s->error), qu_json_str(v));
	if (json_object_object_get_ex(mig, "downtime", &v))
		s->downtime_ms = json_object_get_int64(v);
	if (json_object_object_get_ex(mig, "ram", &ram)) {
		s->transferred = member_u64(ram, "transferred");
		s->remaining = member_u64(ram, "remaining");
		s->total = member_u64(ram, "total");
		s->copied = member_u64(ram, "normal") * member_u64(ram, "page-size");
		if (json_object_object_get_ex(ram, "mbps", &v))
			s->mbps = json_object_get_double(v);
	}
	json_object_put(mig);
	return 0;
}

int qu_mig_running(const char *status)
{
	if (!status[0] || !strcmp(status, "none"))
		return 0;
	for (size_t i = 0; qu_mig_end[i]; i++)
		if (!strcmp(status, qu_mig_end[i]))
			return 0;
	return 1;
}

int qu_mig_postcopy_status(const char *status)
{
	return !strncmp(status, "postcopy", 8);
}

int qu_mig_cancel(struct qu_qmp *q, uint64_t deadline_us)
{
	struct qu_mig_status s;
	int r = qu_mig_query(q, deadline_us, &s);
	if (r < 0 || !qu_mig_running(s.status))
		return r;
	if ((r = qu_qmp_execute(q, "migrate_cancel", NULL, -1, deadline_us, NULL)) < 0)
		return r;
	qu_qmp_wait_event(q, "MIGRATION", qu_mig_end, -1, deadline_us, NULL);
	return 1;
}

int qu_mig_wait_incoming(struct qu_qmp *q, int pidfd, uint64_t deadline_us)
{
	json_object *data = NULL, *st;
	int r = qu_qmp_wait_event(q, "MIGRATION", qu_mig_end, pidfd, deadline_us, &data);
	if (r < 0)
		return qu_err_wrap(r, "the new QEMU did not load the VM state");
	const char *status = json_object_object_get_ex(data, "status", &st) ? json_object_get_string(st) : "?";
	if (strcmp(status, "completed"))
		r = qu_err(-EIO, "the new QEMU's incoming migration ended with status '%s'", status);
	json_object_put(data);
	return r;
}

static json_object *capability(const char *name, int state)
{
	json_object *c = json_object_new_object();
	json_object_object_add(c, "capability", json_object_new_string(name));
	json_object_object_add(c, "state", json_object_new_boolean(state));
	return c;
}

int qu_mig_capabilities(struct qu_qmp *q, size_t n, const char *const *names, const int *states,
			uint64_t deadline_us)
{
	json_object *args = json_object_new_object(), *caps = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(caps, capability(names[i], states[i]));
	json_object_object_add(args, "capabilities", caps);
	return qu_qmp_execute(q, "migrate-set-capabilities", args, -1, deadline_us, NULL);
}

int qu_mig_set(struct qu_qmp *q, const struct qu_mig_settings *s, uint64_t deadline_us)
{
	static const char *const names[] = { "x-ignore-shared", "events", "postcopy-ram", "release-ram",
					     "pause-before-switchover" };
	const int states[] = { s->ignore_shared, s->events, s->postcopy, s->release_ram, s->pause_switchover };
	int r = qu_mig_capabilities(q, 5, names, states, deadline_us);
	if (r == 0 && (s->max_bandwidth > 0 || s->downtime_limit > 0 || s->mode[0] || s->tls_set)) {
		json_object *args = json_object_new_object();
		if (s->tls_set)
			json_object_object_add(args, "tls-creds", json_object_new_string(s->tls_creds));
		if (s->mode[0])
			json_object_object_add(args, "mode", json_object_new_string(s->mode));
		if (s->max_bandwidth > 0)
			json_object_object_add(args, "max-bandwidth", json_object_new_int64(s->max_bandwidth));
		if (s->downtime_limit > 0)
			json_object_object_add(args, "downtime-limit", json_object_new_int64(s->downtime_limit));
		r = qu_qmp_execute(q, "migrate-set-parameters", args, -1, deadline_us, NULL);
	}
	return r;
}
