#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "upgrade/log.h"

#include <errno.h>

#include <stdio.h>
#include <string.h>

int qu_mig_get(struct qu_qmp *q, uint64_t deadline_us, struct qu_mig_settings *s)
{
	json_object *caps = NULL, *params = NULL, *v;
	int r = qu_qmp_execute(q, "query-migrate-capabilities", NULL, -1, deadline_us, &caps);
	if (r < 0)
		return r;
	if (!json_object_is_type(caps, json_type_array)) {
		json_object_put(caps);
		return qu_err(-EPROTO, "QMP query-migrate-capabilities: the answer is not a list");
	}
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

int qu_mig_wait_incoming(struct qu_qmp *q, int pidfd, uint64_t deadline_us)
{
	static const char *const mig_end[] = { "completed", "failed", "cancelled", NULL };
	json_object *data = NULL, *st;
	int r = qu_qmp_wait_event(q, "MIGRATION", mig_end, pidfd, deadline_us, &data);
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

int qu_mig_set(struct qu_qmp *q, const struct qu_mig_settings *s, uint64_t deadline_us)
{
	json_object *args = json_object_new_object(), *caps = json_object_new_array();
	json_object_array_add(caps, capability("x-ignore-shared", s->ignore_shared));
	json_object_array_add(caps, capability("events", s->events));
	json_object_array_add(caps, capability("postcopy-ram", s->postcopy));
	json_object_array_add(caps, capability("release-ram", s->release_ram));
	json_object_array_add(caps, capability("pause-before-switchover", s->pause_switchover));
	json_object_object_add(args, "capabilities", caps);
	int r = qu_qmp_execute(q, "migrate-set-capabilities", args, -1, deadline_us, NULL);
	if (r == 0 && (s->max_bandwidth > 0 || s->downtime_limit > 0 || s->mode[0] || s->tls_set)) {
		args = json_object_new_object();
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
