/* COLO's start and end on the primary (enter.h). The stop at the copy's second pass is what
 * made the secondary's guest clean in 60 of 60 measured runs, against 18 corrupt in 30 with
 * the copy live to its end (docs/standby-research.md, "Stopping the primary for the initial
 * copy"). */
#include "remote/standby/enter.h"
#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "upgrade/clock.h"
#include "upgrade/log.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* QEMU's COLO thread resumes the guest 20-30 ms after entering COLO (measured); a RESUME
 * that has not come after this is sent by us. */
#define RESUME_WAIT_US (5ull * 1000000u)
/* How long a run state "colo" left by COLO's end may last before `cont` is tried anyway. */
#define COLO_STATE_WAIT_US (5ull * 1000000u)

/* COLO's capabilities on the primary; with n 1, x-colo alone. */
static int caps(struct qu_qmp *q, uint64_t deadline_us, size_t n, int colo, int return_path, int events)
{
	static const char *const names[] = { "x-colo", "return-path", "events" };
	const int on[] = { colo, return_path, events };
	return qu_mig_capabilities(q, n, names, on, deadline_us);
}

int qu_colo_save(struct qu_qmp *q, uint64_t deadline_us, struct qu_colo_saved *s)
{
	json_object *list = NULL, *params = NULL;
	int r = qu_qmp_query_list(q, "query-migrate-capabilities", deadline_us, &list);
	if (r < 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *c = json_object_array_get_idx(list, i), *st;
		const char *name = qu_json_member_str(c, "capability");
		int on = json_object_object_get_ex(c, "state", &st) && json_object_get_boolean(st);
		if (!strcmp(name, "return-path"))
			s->return_path = on;
		else if (!strcmp(name, "events"))
			s->events = on;
		else if (!strcmp(name, "pause-before-switchover"))
			s->pause_before_switchover = on;
	}
	json_object_put(list);
	if ((r = qu_qmp_execute(q, "query-migrate-parameters", NULL, -1, deadline_us, &params)) < 0)
		return r;
	s->max_bandwidth = qu_json_member_int(params, "max-bandwidth");
	s->checkpoint_delay = qu_json_member_int(params, "x-checkpoint-delay");
	json_object_put(params);
	s->read = 1;
	return 0;
}

static int set_params(struct qu_qmp *q, long long delay, long long bandwidth, const char *tls_id, uint64_t deadline_us)
{
	json_object *args = json_object_new_object();
	json_object_object_add(args, "x-checkpoint-delay", json_object_new_int64(delay));
	json_object_object_add(args, "max-bandwidth", json_object_new_int64(bandwidth));
	json_object_object_add(args, "tls-creds", json_object_new_string(tls_id));
	return qu_qmp_execute(q, "migrate-set-parameters", args, -1, deadline_us, NULL);
}

int qu_colo_checkpoint_now(struct qu_qmp *q, unsigned interval_ms, uint64_t deadline_us)
{
	json_object *args = json_object_new_object();
	json_object_object_add(args, "x-checkpoint-delay", json_object_new_int64(interval_ms));
	int r = qu_qmp_execute(q, "migrate-set-parameters", args, -1, deadline_us, NULL);
	return r < 0 ? qu_err_wrap(r, "asking the primary for a checkpoint") : 0;
}

static int colo_mode(struct qu_qmp *q, uint64_t deadline_us, char *mode, size_t len)
{
	return qu_qmp_query_string(q, "query-colo-status", "mode", deadline_us, mode, len);
}

static int hold(struct qu_qmp *q, int on, uint64_t deadline_us)
{
	static const char *const name[] = { "pause-before-switchover" };
	return qu_mig_capabilities(q, 1, name, &on, deadline_us);
}

/* The guest stopped: until the migration waits before its switch-over, then e->switchover
 * there, then the switch-over. */
static int switch_over(struct qu_qmp *q, int pidfd, uint64_t deadline_us, struct qu_colo_entry *e, int64_t *t_stop)
{
	char name[64];
	int r = 0, held = 0;
	while (!held && r == 0) {
		json_object *data = NULL;
		int64_t at = 0;
		if ((r = qu_qmp_next_event(q, pidfd, deadline_us, name, sizeof(name), &at, &data)) < 0)
			return qu_err_wrap(r, "waiting for the initial copy's switch-over");
		if (!strcmp(name, "STOP") && !*t_stop)
			*t_stop = at; /* the guest's stop: the initial pause starts here */
		if (!strcmp(name, "MIGRATION")) {
			const char *s = qu_json_member_str(data, "status");
			held = !strcmp(s, "pre-switchover");
			if (!held && (!strcmp(s, "failed") || !strcmp(s, "cancelled") || !strcmp(s, "colo") ||
				      !strcmp(s, "completed")))
				r = qu_err(-EIO, "the migration to the secondary went '%s' instead of waiting before its "
						 "switch-over", s);
		}
		json_object_put(data);
	}
	if (r < 0 || (r = e->switchover(e->switchover_arg)) < 0)
		return r;
	json_object *args = json_object_new_object();
	json_object_object_add(args, "state", json_object_new_string("pre-switchover"));
	return qu_qmp_execute(q, "migrate-continue", args, -1, deadline_us, NULL);
}

int qu_colo_enter(struct qu_qmp *q, int pidfd, const char *uri, unsigned interval_ms, const char *tls_id,
		  uint64_t deadline_us, struct qu_colo_entry *e)
{
	char name[64], mode[32] = "", status[32] = "";
	int64_t t_stop = 0, t_resume = 0;
	int r;
	e->pause_ms = -1;
	if ((r = set_params(q, interval_ms, 1ll << 30, tls_id, deadline_us)) < 0 || (r = caps(q, deadline_us, 3, 1, 1, 1)) < 0)
		return qu_err_wrap(r, "setting up the primary's migration");
	/* Held before the switch-over with a disk; never without one, even when the VM's owner
	 * had it so (nothing here would continue the migration: it would wait to the deadline). */
	if (e->switchover || e->saved.pause_before_switchover) {
		if ((r = hold(q, e->switchover != NULL, deadline_us)) < 0)
			return qu_err_wrap(r, "setting the primary's pause-before-switchover");
		e->held = 1;
	}
	json_object *args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string(uri));
	if ((r = qu_qmp_execute(q, "migrate", args, -1, deadline_us, NULL)) < 0)
		return r;
	e->migrating = 1;
	/* Until the copy's second pass starts, the guest runs; then it is stopped. */
	while (!e->stopped) {
		json_object *data = NULL;
		int64_t at = 0;
		if ((r = qu_qmp_next_event(q, pidfd, deadline_us, name, sizeof(name), &at, &data)) < 0)
			return qu_err_wrap(r, "waiting for the initial copy's second pass");
		if (!strcmp(name, "MIGRATION_PASS") && qu_json_member_int(data, "pass") >= 2) {
			r = qu_qmp_execute(q, "stop", NULL, -1, deadline_us, NULL);
			e->stopped = r == 0;
		} else if (!strcmp(name, "MIGRATION")) {
			const char *s = qu_json_member_str(data, "status");
			if (!strcmp(s, "failed") || !strcmp(s, "cancelled"))
				r = qu_err(-EIO, "the migration to the secondary %s", s);
			else if (!strcmp(s, "colo") || !strcmp(s, "completed") || !strcmp(s, "pre-switchover"))
				r = qu_err(-EAGAIN, "the initial copy ended before the guest could be stopped for its end; "
						    "that secondary is not trusted (a live copy left it corrupt in 18 of 30 "
						    "measured runs): try again");
		}
		json_object_put(data);
		if (r < 0)
			return r;
	}
	if (e->switchover && (r = switch_over(q, pidfd, deadline_us, e, &t_stop)) < 0)
		return r;
	/* COLO entered, and the guest running again. */
	while (!e->entered || !t_resume) {
		json_object *data = NULL;
		int64_t at = 0;
		uint64_t until = e->entered ? qu_now_us() + RESUME_WAIT_US : deadline_us;
		if (until > deadline_us)
			until = deadline_us;
		r = qu_qmp_next_event(q, pidfd, until, name, sizeof(name), &at, &data);
		if (r == -ETIMEDOUT && e->entered)
			break;
		if (r < 0)
			return qu_err_wrap(r, "waiting for COLO to start");
		if (!strcmp(name, "STOP") && !t_stop)
			t_stop = at;
		else if (!strcmp(name, "RESUME") && e->entered)
			t_resume = at;
		else if (!strcmp(name, "MIGRATION")) {
			const char *s = qu_json_member_str(data, "status");
			if (!strcmp(s, "failed") || !strcmp(s, "cancelled") || !strcmp(s, "completed"))
				r = qu_err(-EIO, "the migration to the secondary ended '%s' instead of entering COLO", s);
			else if (!strcmp(s, "colo")) {
				if ((r = colo_mode(q, deadline_us, mode, sizeof(mode))) == 0 && strcmp(mode, "primary"))
					r = qu_err(-EIO, "COLO started, but this QEMU says its mode is '%s'", mode);
				e->entered = r == 0;
			}
		} else if (!strcmp(name, "RESUME") && !e->entered) {
			/* COLO's thread resumes the guest as it enters COLO: the event may come first. */
			t_resume = at;
			if ((r = colo_mode(q, deadline_us, mode, sizeof(mode))) == 0)
				e->entered = !strcmp(mode, "primary");
		}
		json_object_put(data);
		if (r < 0)
			return r;
	}
	if ((r = qu_qmp_query_string(q, "query-status", "status", deadline_us, status, sizeof(status))) < 0)
		return r;
	if (!strcmp(status, "colo")) {
		/* COLO holds the guest: its first state still loading on the secondary, or a
		 * checkpoint under way. Its thread resumes the guest itself, and refuses `cont`
		 * meanwhile ("COLO checkpoint in progress": seen when the secondary's load took
		 * longer than RESUME_WAIT_US on a loaded machine). */
		qu_info("standby: the primary is held by COLO (run state 'colo'); waiting for it to resume the guest");
		if ((r = qu_qmp_event_time(q, "RESUME", deadline_us, &t_resume)) < 0)
			return qu_err_wrap(r, "waiting for COLO to resume the primary");
	} else if (strcmp(status, "running")) {
		qu_info("standby: the primary is '%s' in COLO; resuming it", status);
		if ((r = qu_qmp_execute(q, "cont", NULL, -1, deadline_us, NULL)) < 0)
			return r;
		qu_qmp_event_time(q, "RESUME", qu_now_us() + 1000000u, &t_resume);
	}
	if (t_stop && t_resume >= t_stop)
		e->pause_ms = (double)(t_resume - t_stop) / 1000.0;
	return 0;
}

int qu_colo_leave(struct qu_qmp *q, const struct qu_colo_entry *e, uint64_t deadline_us)
{
	char mode[32] = "", status[32] = "";
	int failed = 0;
	if (colo_mode(q, deadline_us, mode, sizeof(mode)) == 0 && !strcmp(mode, "primary")) {
		/* Failover on this side: the primary goes on alone (qemu-colo.rst, "Primary Failover"). */
		if (qu_qmp_execute(q, "x-colo-lost-heartbeat", NULL, -1, deadline_us, NULL) < 0) {
			qu_info("standby: x-colo-lost-heartbeat on the primary: %s", qu_err_msg());
			failed++;
		}
		while (qu_now_us() < deadline_us && colo_mode(q, deadline_us, mode, sizeof(mode)) == 0 && strcmp(mode, "none"))
			usleep(20000);
	} else if (e->migrating && qu_mig_cancel(q, deadline_us) < 0) {
		qu_info("standby: cannot cancel the primary's migration: %s", qu_err_msg());
		failed++;
	}
	qu_err_clear();
	/* A checkpoint under way when COLO ended leaves the run state "colo" for a moment, and
	 * `cont` is refused then ("COLO checkpoint in progress": seen once at --recover in
	 * standby-protect.t); COLO's thread resumes the guest itself. */
	for (uint64_t until = qu_now_us() + COLO_STATE_WAIT_US;
	     qu_qmp_query_string(q, "query-status", "status", deadline_us, status, sizeof(status)) == 0 &&
	     !strcmp(status, "colo") && qu_now_us() < until;)
		usleep(50000);
	qu_err_clear();
	if (qu_qmp_query_string(q, "query-status", "status", deadline_us, status, sizeof(status)) == 0 &&
	    strcmp(status, "running") && (e->stopped || !strcmp(status, "colo") || !strcmp(status, "postmigrate") ||
					  !strcmp(status, "finish-migrate"))) {
		if (qu_qmp_execute(q, "cont", NULL, -1, deadline_us, NULL) < 0) {
			qu_info("standby: cannot resume the primary (it is '%s'): %s", status, qu_err_msg());
			failed++;
		}
	}
	qu_err_clear();
	if (e->held && hold(q, e->saved.pause_before_switchover, deadline_us) < 0) {
		qu_info("standby: cannot put the primary's pause-before-switchover back: %s", qu_err_msg());
		failed++;
	}
	qu_err_clear();
	if (!e->saved.read) {
		/* Unknown before: x-colo off at least (the others may have been the user's). */
		if (caps(q, deadline_us, 1, 0, 0, 0) < 0) {
			qu_info("standby: cannot switch the primary's x-colo off: %s", qu_err_msg());
			failed++;
		}
	} else {
		if (caps(q, deadline_us, 3, 0, e->saved.return_path, e->saved.events) < 0 ||
		    set_params(q, e->saved.checkpoint_delay, e->saved.max_bandwidth, "", deadline_us) < 0) {
			qu_info("standby: cannot put the primary's migration settings back: %s", qu_err_msg());
			failed++;
		}
	}
	qu_err_clear();
	return failed;
}
