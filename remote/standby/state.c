/* standby's state file (state.h). The directory is root's (upgrade/statedir.h): nothing a
 * VM's owner wrote is read back from it. */
#include "remote/standby/state.h"
#include "qemu-integration/qmp.h"
#include "upgrade/clock.h"
#include "upgrade/io.h"
#include "upgrade/statedir.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STATE_MAX_BYTES 65536

void qu_standby_state_path(pid_t pid, char *out, size_t len)
{
	snprintf(out, len, "%s/standby-%d.json", qu_state_dir(), (int)pid);
}

double qu_standby_paused_share(const struct qu_standby_state *s)
{
	if (s->paused_total_ms < 0 || !s->since_us || s->last_checkpoint_us <= s->since_us)
		return -1;
	return s->paused_total_ms * 1000.0 / (double)(s->last_checkpoint_us - s->since_us);
}

static json_object *to_json(const struct qu_standby_state *s)
{
	json_object *o = json_object_new_object();
	int64_t now_us = qu_wall_us();
	json_object_object_add(o, "pid", json_object_new_int(s->pid));
	json_object_object_add(o, "pid_start", json_object_new_uint64(s->pid_start));
	json_object_object_add(o, "supervisor_pid", json_object_new_int(s->supervisor));
	json_object_object_add(o, "supervisor_start", json_object_new_uint64(s->supervisor_start));
	json_object_object_add(o, "state", json_object_new_string(s->state));
	if (s->reason[0])
		json_object_object_add(o, "reason", json_object_new_string(s->reason));
	json_object_object_add(o, "host", json_object_new_string(s->host));
	json_object_object_add(o, "standby_pid", json_object_new_int(s->standby_pid));
	json_object_object_add(o, "interval_ms", json_object_new_int64(s->interval_ms));
	json_object_object_add(o, "heartbeat_timeout_ms", json_object_new_int64(s->heartbeat_timeout_ms));
	if (s->failed_over_us)
		json_object_object_add(o, "failed_over_us", json_object_new_int64(s->failed_over_us));
	json_object_object_add(o, "checkpoints", json_object_new_uint64(s->checkpoints));
	json_object_object_add(o, "last_checkpoint_us", json_object_new_int64(s->last_checkpoint_us));
	json_object_object_add(o, "last_checkpoint_ms_ago",
			       s->last_checkpoint_us ? json_object_new_int64((now_us - s->last_checkpoint_us) / 1000) : NULL);
	json_object_object_add(o, "initial_pause_ms", json_object_new_double(s->initial_pause_ms));
	json_object_object_add(o, "pause_median_ms", json_object_new_double(s->pause_median_ms));
	json_object_object_add(o, "pause_max_ms", json_object_new_double(s->pause_max_ms));
	json_object_object_add(o, "paused_total_ms",
			       s->paused_total_ms >= 0 ? json_object_new_double(s->paused_total_ms) : NULL);
	double share = qu_standby_paused_share(s);
	json_object_object_add(o, "paused_share", share >= 0 ? json_object_new_double(share) : NULL);
	json_object_object_add(o, "initial_copy_bytes",
			       s->initial_copy_bytes >= 0 ? json_object_new_int64(s->initial_copy_bytes) : NULL);
	json_object_object_add(o, "bytes_per_checkpoint_median",
			       s->checkpoint_bytes_median >= 0 ? json_object_new_int64(s->checkpoint_bytes_median) : NULL);
	json_object_object_add(o, "bytes_per_checkpoint_max",
			       s->checkpoint_bytes_max >= 0 ? json_object_new_int64(s->checkpoint_bytes_max) : NULL);
	json_object_object_add(o, "bytes_since_protected",
			       s->initial_copy_bytes >= 0 ? json_object_new_uint64(s->protected_bytes) : NULL);
	if (s->switchover_capable)
		json_object_object_add(o, "switchover_capable", json_object_new_boolean(1));
	json_object_object_add(o, "since_us", json_object_new_int64(s->since_us));
	if (s->switchover[0]) {
		json_object_object_add(o, "switchover", json_object_new_string(s->switchover));
		json_object_object_add(o, "switchover_asks", json_object_new_int64(s->switchover_asks));
		json_object_object_add(o, "switchover_ms",
				       s->switchover_ms >= 0 ? json_object_new_double(s->switchover_ms) : NULL);
	}
	if (s->saved_read) {
		json_object *b = json_object_new_object();
		json_object_object_add(b, "return_path", json_object_new_boolean(s->saved_return_path));
		json_object_object_add(b, "events", json_object_new_boolean(s->saved_events));
		json_object_object_add(b, "pause_before_switchover", json_object_new_boolean(s->saved_pause_before_switchover));
		json_object_object_add(b, "max_bandwidth", json_object_new_int64(s->saved_max_bandwidth));
		json_object_object_add(b, "checkpoint_delay", json_object_new_int64(s->saved_checkpoint_delay));
		json_object_object_add(o, "settings_before", b);
	}
	return o;
}

/* An integer member, or fallback when it is absent or null (unknown). */
static long long member_or(json_object *o, const char *key, long long fallback)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int) ? json_object_get_int64(v)
											      : fallback;
}

char *qu_standby_state_json(const struct qu_standby_state *s)
{
	json_object *o = to_json(s);
	char *text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return text;
}

int qu_standby_state_write(const struct qu_standby_state *s)
{
	char path[512], tmp[560];
	if (mkdir(qu_state_dir(), 0700) < 0 && errno != EEXIST)
		return -errno;
	qu_standby_state_path(s->pid, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	char *text = qu_standby_state_json(s);
	if (!text)
		return -ENOMEM;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600), r = 0;
	if (fd < 0)
		r = -errno;
	else if ((r = qu_write_full(fd, text, strlen(text))) == 0 && (r = qu_write_full(fd, "\n", 1)) == 0 &&
		 rename(tmp, path) < 0)
		r = -errno;
	if (fd >= 0)
		close(fd);
	if (r < 0)
		unlink(tmp);
	free(text);
	return r;
}

int qu_standby_state_read(pid_t pid, struct qu_standby_state *s)
{
	char path[512], *text = NULL;
	size_t n = 0;
	qu_standby_state_path(pid, path, sizeof(path));
	int r = qu_read_file(path, &text, &n);
	if (r < 0)
		return r == -ENOENT ? -ENOENT : -EBADMSG;
	json_object *o = n < STATE_MAX_BYTES ? json_tokener_parse(text) : NULL;
	free(text);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return -EBADMSG;
	}
	memset(s, 0, sizeof(*s));
	s->pid = (pid_t)qu_json_member_int(o, "pid");
	s->pid_start = (unsigned long long)qu_json_member_int(o, "pid_start");
	s->supervisor = (pid_t)qu_json_member_int(o, "supervisor_pid");
	s->supervisor_start = (unsigned long long)qu_json_member_int(o, "supervisor_start");
	snprintf(s->state, sizeof(s->state), "%s", qu_json_member_str(o, "state"));
	snprintf(s->reason, sizeof(s->reason), "%s", qu_json_member_str(o, "reason"));
	snprintf(s->host, sizeof(s->host), "%s", qu_json_member_str(o, "host"));
	s->standby_pid = (pid_t)qu_json_member_int(o, "standby_pid");
	s->interval_ms = (unsigned)qu_json_member_int(o, "interval_ms");
	s->heartbeat_timeout_ms = (unsigned)qu_json_member_int(o, "heartbeat_timeout_ms");
	s->failed_over_us = qu_json_member_int(o, "failed_over_us");
	s->checkpoints = (unsigned long long)qu_json_member_int(o, "checkpoints");
	s->last_checkpoint_us = qu_json_member_int(o, "last_checkpoint_us");
	json_object *d;
	s->initial_pause_ms = json_object_object_get_ex(o, "initial_pause_ms", &d) ? json_object_get_double(d) : -1;
	s->pause_median_ms = json_object_object_get_ex(o, "pause_median_ms", &d) ? json_object_get_double(d) : -1;
	s->pause_max_ms = json_object_object_get_ex(o, "pause_max_ms", &d) ? json_object_get_double(d) : -1;
	s->since_us = qu_json_member_int(o, "since_us");
	s->paused_total_ms = json_object_object_get_ex(o, "paused_total_ms", &d) && d ? json_object_get_double(d) : -1;
	s->switchover_capable = json_object_object_get_ex(o, "switchover_capable", &d) && json_object_get_boolean(d);
	snprintf(s->switchover, sizeof(s->switchover), "%s", qu_json_member_str(o, "switchover"));
	s->switchover_asks = (unsigned)qu_json_member_int(o, "switchover_asks");
	s->switchover_ms = json_object_object_get_ex(o, "switchover_ms", &d) && json_object_is_type(d, json_type_double)
				   ? json_object_get_double(d)
				   : -1;
	s->initial_copy_bytes = member_or(o, "initial_copy_bytes", -1);
	s->checkpoint_bytes_median = member_or(o, "bytes_per_checkpoint_median", -1);
	s->checkpoint_bytes_max = member_or(o, "bytes_per_checkpoint_max", -1);
	s->protected_bytes = (unsigned long long)qu_json_member_int(o, "bytes_since_protected");
	if (json_object_object_get_ex(o, "settings_before", &d) && json_object_is_type(d, json_type_object)) {
		json_object *v;
		s->saved_read = 1;
		s->saved_return_path = json_object_object_get_ex(d, "return_path", &v) && json_object_get_boolean(v);
		s->saved_events = json_object_object_get_ex(d, "events", &v) && json_object_get_boolean(v);
		s->saved_pause_before_switchover =
			json_object_object_get_ex(d, "pause_before_switchover", &v) && json_object_get_boolean(v);
		s->saved_max_bandwidth = qu_json_member_int(d, "max_bandwidth");
		s->saved_checkpoint_delay = qu_json_member_int(d, "checkpoint_delay");
	}
	json_object_put(o);
	return s->pid == pid ? 0 : -EBADMSG;
}

void qu_standby_state_remove(pid_t pid)
{
	char path[512];
	qu_standby_state_path(pid, path, sizeof(path));
	unlink(path);
}
