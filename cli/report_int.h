/*
 * report_int.h - what report.c (building the drill report) and
 * report_print.c (printing it) share; private to cli/.
 */
#ifndef KN_CLI_REPORT_INT_H
#define KN_CLI_REPORT_INT_H

#include <jansson.h>

/* Print the report o (as report.c builds it) as text or as an HTML page
 * on stdout. */
void kn__report_print_text(json_t *o);
void kn__report_print_html(json_t *o);

#endif
