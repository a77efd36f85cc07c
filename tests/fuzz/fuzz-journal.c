/* The upgrade's journal (upgrade/journal.c): qu_journal_read of a damaged or hostile file,
 * then, when it reads, qu_journal_write of what was read and qu_journal_read again giving the
 * same (the state directory is a private one: QEMU_UPGRADE_STATE_DIR, test hooks on).
 * Input: the file. */
#include "tests/fuzz/fuzz.h"
#include "upgrade/journal.h"

static char path[128];
static struct qu_journal a, b;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	snprintf(path, sizeof(path), "%s/input.journal", fuzz_tmpdir());
	setenv("QEMU_UPGRADE_STATE_DIR", fuzz_tmpdir(), 1);
	return 0;
}

static int same_strings(const struct qu_journal *x, const struct qu_journal *y)
{
	if (strcmp(x->remote, y->remote) || strcmp(x->qmp, y->qmp) || strcmp(x->ctl, y->ctl) ||
	    strcmp(x->pidfile, y->pidfile) || x->nlisteners != y->nlisteners ||
	    strcmp(x->old_settings.mode, y->old_settings.mode) ||
	    strcmp(x->old_settings.tls_creds, y->old_settings.tls_creds))
		return 0;
	for (size_t i = 0; i < x->nlisteners; i++)
		if (strcmp(x->listeners[i], y->listeners[i]))
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_write_file(path, data, size);
	int r = qu_journal_read(path, &a);
	FUZZ_CHECK(r == 0 || r == -EBADMSG);
	FUZZ_CHECK(a.nlisteners <= QU_MAX_LISTENERS);
	if (r < 0)
		return 0;
	FUZZ_CHECK(a.phase >= QU_PH_PLANNED && a.phase <= QU_PH_ROLLED_BACK && a.old_pid > 0);
	FUZZ_CHECK(strcmp(qu_phase_name(a.phase), "?"));
	/* What was read is written as it is, and reads back the same. */
	char again[PATH_MAX];
	qu_state_path(a.old_pid, "journal", again, sizeof(again));
	FUZZ_CHECK(!strncmp(again, fuzz_tmpdir(), strlen(fuzz_tmpdir())));
	FUZZ_CHECK(qu_journal_write(&a) == 0);
	FUZZ_CHECK(qu_journal_read(again, &b) == 0);
	FUZZ_CHECK(a.phase == b.phase && a.old_pid == b.old_pid && a.new_pid == b.new_pid &&
		   a.tool_pid == b.tool_pid);
	FUZZ_CHECK(same_strings(&a, &b));
	qu_journal_remove(a.old_pid);
	return 0;
}
