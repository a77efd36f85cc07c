/* The settle decision (upgrade/decision.c) against the table in docs/faults.md, row by row,
 * and the rules that must hold for every input whatever the table says. */
#include "unit.h"
#include "upgrade/decision.h"

#define FAULTS_MD "docs/faults.md"
#define MAX_ROWS 128

struct row {
	struct qu_settle_facts f;
	enum qu_settle_way way;
	char text[512];
};

static int phase_of(const char *s, enum qu_phase *p)
{
	for (int i = QU_PH_PLANNED; i <= QU_PH_ROLLED_BACK; i++)
		if (!strcmp(s, qu_phase_name((enum qu_phase)i))) {
			*p = (enum qu_phase)i;
			return 0;
		}
	return -1;
}

static int new_state_of(const char *s, enum qu_new_state *n)
{
	for (int i = QU_NEW_NONE; i <= QU_NEW_OTHER; i++)
		if (!strcmp(s, qu_new_state_name((enum qu_new_state)i))) {
			*n = (enum qu_new_state)i;
			return 0;
		}
	return -1;
}

static int way_of(const char *s, enum qu_settle_way *w)
{
	for (int i = QU_SETTLE_NOTHING; i <= QU_SETTLE_LOST; i++)
		if (!strcmp(s, qu_settle_way_name((enum qu_settle_way)i))) {
			*w = (enum qu_settle_way)i;
			return 0;
		}
	return -1;
}

/* The cells of a markdown row "| a | b | ... |", trimmed, into cells[]; returns their number. */
static int cells_of(char *line, char cells[][64], int max)
{
	int n = 0;
	if (line[0] != '|')
		return 0;
	/* strtok would fold an empty cell into its neighbour. */
	for (char *c = line + 1, *bar; (bar = strchr(c, '|')) && n < max; c = bar + 1) {
		*bar = '\0';
		while (*c == ' ')
			c++;
		size_t len = strlen(c);
		while (len && (c[len - 1] == ' ' || c[len - 1] == '\n'))
			c[--len] = '\0';
		snprintf(cells[n++], 64, "%s", c);
	}
	return n;
}

/* The rows of the table under "## The settle decision"; a row that does not parse fails. */
static size_t read_table(struct row *rows)
{
	FILE *f = fopen(FAULTS_MD, "r");
	if (!f)
		fail_msg("cannot open %s (run from the repository's top): %s", FAULTS_MD, strerror(errno));
	char line[512], cells[6][64];
	size_t n = 0;
	int in_section = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "## ", 3))
			in_section = !strcmp(line, "## The settle decision\n");
		if (!in_section || strncmp(line, "| ", 2) || strstr(line, "| --- |") || strstr(line, "| phase |"))
			continue;
		struct row *r = &rows[n];
		snprintf(r->text, sizeof(r->text), "%s", line);
		if (cells_of(line, cells, 6) != 5)
			fail_msg("not 5 cells: %s", r->text);
		memset(&r->f, 0, sizeof(r->f));
		if (phase_of(cells[0], &r->f.phase) < 0 || new_state_of(cells[2], &r->f.new_state) < 0 ||
		    way_of(cells[4], &r->way) < 0 || (strcmp(cells[1], "alive") && strcmp(cells[1], "gone")))
			fail_msg("a cell names nothing the code knows: %s", r->text);
		r->f.old_alive = !strcmp(cells[1], "alive");
		r->f.postcopy_asked = strstr(cells[3], "postcopy asked") != NULL;
		r->f.remote = strstr(cells[3], "remote") != NULL;
		r->f.remote_refused = strstr(cells[3], "refused") != NULL;
		assert_true(++n < MAX_ROWS);
	}
	fclose(f);
	return n;
}

static void every_row_of_the_table(void **state)
{
	(void)state;
	static struct row rows[MAX_ROWS];
	size_t n = read_table(rows), wrong = 0;
	int phases = 0;
	note("%zu rows in %s", n, FAULTS_MD);
	assert_true(n >= 40);
	for (size_t i = 0; i < n; i++) {
		enum qu_settle_way got = qu_settle_decide(&rows[i].f);
		phases |= 1 << rows[i].f.phase;
		if (got != rows[i].way) {
			note("decided %s for: %s", qu_settle_way_name(got), rows[i].text);
			wrong++;
		}
	}
	assert_int_equal(wrong, 0);
	/* Every phase has at least one row. */
	for (int p = QU_PH_PLANNED; p <= QU_PH_ROLLED_BACK; p++)
		if (!(phases & (1 << p)))
			fail_msg("no row for phase %s", qu_phase_name((enum qu_phase)p));
}

/* Calls fn on every combination of the facts. */
static void for_all(void (*fn)(const struct qu_settle_facts *, enum qu_settle_way))
{
	for (int p = QU_PH_PLANNED; p <= QU_PH_ROLLED_BACK; p++)
		for (int old = 0; old < 2; old++)
			for (int n = QU_NEW_NONE; n <= QU_NEW_OTHER; n++)
				for (int bits = 0; bits < 8; bits++) {
					if ((bits & 1) && n != QU_NEW_NONE)
						continue; /* --remote: the new QEMU is not ours to ask */
					struct qu_settle_facts f = { .phase = (enum qu_phase)p, .old_alive = old,
								     .new_state = (enum qu_new_state)n,
								     .remote = bits & 1, .remote_refused = (bits & 2) && (bits & 1),
								     .postcopy_asked = (bits & 4) && !(bits & 1) };
					fn(&f, qu_settle_decide(&f));
				}
}

static void check_rules(const struct qu_settle_facts *f, enum qu_settle_way w)
{
	const char *ph = qu_phase_name(f->phase), *nw = qu_new_state_name(f->new_state), *way = qu_settle_way_name(w);
	/* Two QEMUs never run the guest: no undo (which resumes the old QEMU) once the new QEMU
	 * answers that it runs, or was told to and may have. */
	if (w == QU_SETTLE_BACK && f->phase >= QU_PH_SOURCE_COMPLETED &&
	    (f->new_state == QU_NEW_RUNNING ||
	     (f->phase >= QU_PH_RESUMING && (f->new_state == QU_NEW_SILENT || f->new_state == QU_NEW_OTHER))))
		fail_msg("back with the new QEMU %s at %s", nw, ph);
	/* After the commit the old QEMU's state is stale: never back (nor for --remote). */
	if (f->phase >= QU_PH_COMMITTED && f->phase <= QU_PH_RETIRED && w == QU_SETTLE_BACK)
		fail_msg("back after the commit (%s, new %s, remote %d)", ph, nw, f->remote);
	/* --remote: once asked to resume there, only the agent's refusal lets the old QEMU run. */
	if (f->remote && f->phase == QU_PH_RESUMING && !f->remote_refused && w == QU_SETTLE_BACK)
		fail_msg("remote: back after asking the agent to resume");
	/* The new QEMU is resumed only when the old QEMU cannot hold the guest any more. */
	if (w == QU_SETTLE_RESUME_NEW && (f->old_alive || f->new_state != QU_NEW_LOADED))
		fail_msg("resume-new with the old QEMU %s and the new %s", f->old_alive ? "alive" : "gone", nw);
	/* Undo needs an old QEMU; a lost guest is one whose old QEMU is gone. */
	if (w == QU_SETTLE_BACK && !f->old_alive)
		fail_msg("back with the old QEMU gone (%s)", ph);
	if (w == QU_SETTLE_LOST && f->old_alive)
		fail_msg("lost with the old QEMU alive (%s, new %s)", ph, nw);
	/* Postcopy asked and possibly switched: only its own rules decide. */
	if (f->postcopy_asked && !f->remote && f->phase >= QU_PH_POSTCOPY && f->phase <= QU_PH_COMMITTED &&
	    w != QU_SETTLE_POSTCOPY)
		fail_msg("postcopy asked at %s, decided %s", ph, way);
}

static void rules_for_every_input(void **state)
{
	(void)state;
	for_all(check_rules);
}

static void unknown_phase_is_left_alone(void **state)
{
	(void)state;
	struct qu_settle_facts f = { .phase = (enum qu_phase)42, .old_alive = 1, .new_state = QU_NEW_RUNNING };
	assert_int_equal(qu_settle_decide(&f), QU_SETTLE_UNKNOWN);
	f.phase = (enum qu_phase)0;
	assert_int_equal(qu_settle_decide(&f), QU_SETTLE_UNKNOWN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_row_of_the_table),
		cmocka_unit_test(rules_for_every_input),
		cmocka_unit_test(unknown_phase_is_left_alone),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
