/* standby's plan for people (text) and programs (one JSON object). */
#ifndef QU_STANDBY_REPORT_H
#define QU_STANDBY_REPORT_H

#include "remote/standby/plan.h"

#include <stdio.h>

void qu_standby_plan_print(const struct qu_standby_plan *p, FILE *f);
/* {"result": "planned"|"refused", ...}: a new string, NULL when out of memory. */
char *qu_standby_plan_json(const struct qu_standby_plan *p);

#endif
