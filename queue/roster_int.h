/*
 * roster_int.h - what roster.c (the checks) and roster_store.c (the
 * writing) share: a checked row and three small helpers.  Private to
 * queue/.
 */
#ifndef KN_QUEUE_ROSTER_INT_H
#define KN_QUEUE_ROSTER_INT_H

#include <stddef.h>

#include "queue/roster.h"

/*
 * At most MAX_SHOWN problems are kept of a kind (header columns, bad
 * rows), the rest only counted ("... and N more"): a file of two million
 * unknown columns must not make two million messages.  A row keeps at
 * most MAX_WHY reasons.
 */
#define BATCH     100 /* rows per Lua call */
#define NARGS     13  /* script arguments per row */
#define MAX_SHOWN KN_ROSTER_MAX_SHOWN
#define MAX_WHY   10

/* One data row, normalised: v[c] is "" for an empty cell. */
struct rrow {
    long line;
    long row; /* as a spreadsheet shows it (kn_roster_problem) */
    char *v[COL__COUNT];
    int active; /* -1: not given (new records become active) */
    char hash[33];
    char *why;             /* NULL: good; else the reasons, joined by "; " */
    char *why_ja;          /* the same in Japanese, joined by " " */
    size_t nwhy, more_why; /* reasons kept, and those past MAX_WHY */
    /* A row repeating an earlier row's id adds a guardian of that child
     * (merge_guardians): it hangs on the first row's list and is written
     * with it, never on its own. */
    struct rrow *next_guardian;
    int merged;
};

/* strcmp of two char * (qsort, bsearch). */
int kn__roster_cmp_str(const void *a, const void *b);
/* Split s on sep into trimmed, non-empty heap strings (*out
 * NULL-terminated); returns their count. */
size_t kn__roster_split(const char *s, char sep, char ***out);
void kn__roster_strv_free(char **v, size_t n);

#endif
