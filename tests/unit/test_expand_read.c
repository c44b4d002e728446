/*
 * test_expand_read.c - the pages read ahead (dispatcher/expand_read.c): a
 * list of up to AHEAD_PAGES pages after the one the expander is on, each
 * freed exactly once whether used, lost and read again, or dropped with
 * its replies still to come.  The file is included to reach its statics;
 * Redis is a script here: every command sent is kept with its callback,
 * and the test answers them in order, each as it chooses (an array, nil,
 * or no reply: the connection lost).  A commit only records which page
 * and recipients it would have committed.  Run under valgrind (run.sh) or
 * ASan: a page freed twice or never fails it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dispatcher/expand_read.c"

/* ---- Redis as a script ---- */

#define MAXCMD 4096

static struct sent {
    kn_redis_cb *cb;
    void *arg;
    char text[256];
} sent[MAXCMD];
static size_t nsent, nanswered;
static int refuse; /* kn_redis_cmd fails (the connection is down) */

int kn_redis_cmd(struct kn_redis *r, kn_redis_cb *cb, void *arg,
                 const char *fmt, ...)
{
    va_list ap;
    if (refuse)
        return -1;
    assert_true(nsent < MAXCMD);
    va_start(ap, fmt);
    vsnprintf(sent[nsent].text, sizeof(sent[nsent].text), fmt, ap);
    va_end(ap);
    sent[nsent].cb = cb;
    sent[nsent].arg = arg;
    nsent++;
    return 0;
}

static void answer_with(redisReply *rep)
{
    struct sent *s = &sent[nanswered++];
    if (s->cb != NULL)
        s->cb(NULL, rep, s->arg);
}

static redisReply *rstr(const char *s)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_STRING;
    r->str = strdup(s);
    r->len = strlen(s);
    return r;
}

static redisReply *rarr(size_t n)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n + 1, sizeof(*r->element));
    return r;
}

static void rfree(redisReply *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->elements; i++)
        rfree(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

/* The audience: entries 0..AUD-1, "d:r<i>" (directory) when dir, else
 * "i:{"id":"r<i>"}" (inline). */
#define AUD  100
#define PAGE 20
static int dir;

/* Answer the next command as Redis would; lost: no reply (NULL). */
static void answer(int lost)
{
    struct sent *s = &sent[nanswered];
    redisReply *rep = NULL;
    long long from, to;
    char rid[32];
    assert_true(nanswered < nsent);
    if (lost) {
        answer_with(NULL);
        return;
    }
    if (sscanf(s->text, "LRANGE %*s %lld %lld", &from, &to) == 2) {
        if (to >= AUD)
            to = AUD - 1;
        rep = rarr((size_t)(to - from + 1));
        for (long long i = from; i <= to; i++) {
            char v[64];
            if (dir)
                snprintf(v, sizeof(v), "d:r%lld", i);
            else
                snprintf(v, sizeof(v), "i:{\"id\":\"r%lld\"}", i);
            rep->element[i - from] = rstr(v);
        }
    } else if (sscanf(s->text, "HMGET k:rcpt:t:%31s", rid) == 1) {
        char v[64];
        snprintf(v, sizeof(v), "{\"id\":\"%s\"}", rid);
        rep = rarr(2);
        rep->element[0] = rstr(v);
        rep->element[1] = rstr("1");
    } else if (strncmp(s->text, "HGET ", 5) == 0) {
        rep = calloc(1, sizeof(*rep));
        rep->type = REDIS_REPLY_NIL;
    } else {
        fail_msg("unexpected command \"%s\"", s->text);
    }
    answer_with(rep);
    rfree(rep);
}

/* Answer every command, those its answers send too. */
static void answer_all(void)
{
    while (nanswered < nsent)
        answer(0);
}

/* Answer the commands sent so far (not those their answers send). */
static void answer_pending(void)
{
    size_t n = nsent;
    while (nanswered < n)
        answer(0);
}

/* Answer the next n commands. */
static void answer_n(size_t n)
{
    while (n-- > 0)
        answer(0);
}

/* ---- the rest of the expander, as far as expand_read.c calls it ---- */

static int failed;
/* Recipients committed, by index in the audience; pages committed. */
static int got[AUD];
static int64_t committed[64];
static size_t ncommitted;
static size_t fair_waiting;

char *kn__key(const struct kn_daemon *d, const char *fmt, ...)
{
    return kn_xstrdup("k:dlq");
}

void kn__expand_failed(struct kn_expander *e, const redisReply *rep)
{
    failed++;
}

void kn__expand_commit_page(struct kn_expander *e)
{
    assert_true(ncommitted < 64);
    committed[ncommitted++] = e->page;
    for (size_t i = 0; i < e->nrj; i++) {
        int idx;
        /* read: as a tree, or flat (an inline entry of the simplest
         * shape, dispatcher/expand_flat.c) */
        assert_true(e->rj[i] != NULL ||
                    (e->flat != NULL && e->flat[i].buf != NULL));
        assert_int_equal(sscanf(e->rid[i], "r%d", &idx), 1);
        assert_true(idx >= 0 && idx < AUD);
        got[idx]++;
    }
    e->inflight++;
    e->page++;
    kn__expand_page_clear(e);
}

void kn__expand_step(struct kn_expander *e, const char *what)
{
}

void kn__expand_step_key(struct kn_expander *e, char *key, const char *want)
{
    free(key);
}

size_t kn__expand_fair_count(const struct kn_expander *e)
{
    return fair_waiting;
}

int64_t kn__expand_depth_peek(const struct kn_expander *e, int i)
{
    return 1000000;
}

const char *kn__expand_rep_error(const redisReply *rep)
{
    return rep != NULL && rep->type == REDIS_REPLY_ERROR ? rep->str : NULL;
}

static struct kn_config cfg;
static struct kn_daemon d;
static struct kn_expander ex;
static struct xentry entry_a, entry_b;

static int setup(void **st)
{
    memset(&cfg, 0, sizeof(cfg));
    memset(&d, 0, sizeof(d));
    memset(&ex, 0, sizeof(ex));
    memset(got, 0, sizeof(got));
    nsent = nanswered = 0;
    refuse = failed = 0;
    ncommitted = 0;
    fair_waiting = 0;
    dir = 0;
    cfg.expand_page = PAGE;
    d.cfg = &cfg;
    d.prefix = "k:";
    ex.d = &d;
    ex.tenant = kn_xstrdup("t");
    ex.aud_n = AUD;
    /* no lengths measured: pages are not committed before the last
     * commit's answer (kn__expand_pipeline_next), except where a test
     * says */
    ex.clen_ms = kn_mono_ms() - 1000000;
    entry_a.id = "1-0";
    entry_a.bc = "b-a";
    entry_b.id = "2-0";
    entry_b.bc = "b-b";
    ex.cur = &entry_a;
    return 0;
}

static int teardown(void **st)
{
    kn__expand_ahead_drop(&ex);
    answer_all(); /* replies to come free the pages dropped */
    kn__expand_page_clear(&ex);
    free(ex.tenant);
    return 0;
}

/* The pages read ahead, in order, as page numbers (-1 ends). */
static void assert_ahead(const int64_t *want)
{
    const struct xpage *pg = ex.ahead;
    for (; *want >= 0; want++, pg = pg->next) {
        assert_non_null(pg);
        assert_int_equal(pg->page, *want);
    }
    assert_null(pg);
}

/* A commit answered with no other on its way: the turn goes on with the
 * next page (what kn__expand_page does once the depth is known). */
static void next_turn(void)
{
    ex.inflight = 0;
    kn__expand_range_page(&ex);
}

/* Every recipient of pages [0, last] exactly once, none after. */
static void assert_once_upto(int64_t last)
{
    long long end = kn__expand_page_start(&ex, last + 1);
    for (int i = 0; i < AUD; i++)
        assert_int_equal(got[i], i < end ? 1 : 0);
}

/* Page 0 read for real (and its lookups answered): pages 1 and 2 are
 * read ahead, in order, before its commit. */
static void first_page(void)
{
    kn__expand_range_page(&ex);
    answer(0);        /* LRANGE 0 */
    answer_pending(); /* its lookups (directory entries) */
    assert_int_equal(ncommitted, 1);
    assert_ahead((int64_t[]){1, 2, -1});
}

/* Each next turn uses the head and reads one more page ahead. */
static void ahead_two(void **st)
{
    first_page();
    answer_all();
    next_turn(); /* page 1, read ahead: 3 read */
    assert_ahead((int64_t[]){2, 3, -1});
    answer_all();
    next_turn();
    assert_ahead((int64_t[]){3, 4, -1});
    next_turn(); /* none beyond page 4 */
    assert_ahead((int64_t[]){4, -1});
    answer_all();
    next_turn();
    assert_ahead((int64_t[]){-1});
    assert_int_equal(ncommitted, 5);
    for (size_t i = 0; i < ncommitted; i++)
        assert_int_equal(committed[i], (int64_t)i);
    assert_once_upto(4);
    assert_int_equal(failed, 0);
}

/* The second page read ahead loses a lookup (directory entries): the
 * first is used, the lost one read again for real at its turn. */
static void second_lost(void **st)
{
    dir = 1;
    first_page();
    answer(0);          /* LRANGE 1: its 40 lookups sent */
    answer(0);          /* LRANGE 2: its 40 lookups sent */
    answer_n(2 * PAGE); /* page 1's */
    assert_true(ex.ahead->done);
    answer(1); /* page 2's first: lost */
    answer_all();
    assert_true(ex.ahead->next->done);
    assert_true(ex.ahead->next->lost);
    next_turn(); /* page 1 used, page 3 read ahead behind the lost 2 */
    assert_ahead((int64_t[]){2, 3, -1});
    answer_all();
    next_turn(); /* page 2 read again for real */
    assert_ahead((int64_t[]){3, -1});
    answer_all(); /* page 2 used, 4 read ahead */
    assert_int_equal(ncommitted, 3);
    assert_ahead((int64_t[]){3, 4, -1});
    answer_all();
    next_turn();
    next_turn();
    assert_int_equal(ncommitted, 5);
    assert_once_upto(4);
    assert_int_equal(failed, 0);
}

/* The first page read ahead loses its LRANGE while the second is read:
 * the first is read again, the second then used in its turn. */
static void head_lost(void **st)
{
    dir = 1;
    first_page();
    answer(1); /* LRANGE 1: lost */
    answer_all();
    assert_true(ex.ahead->lost);
    next_turn();
    assert_ahead((int64_t[]){2, -1});
    answer_all(); /* page 1 read again, used; page 3 read ahead */
    assert_int_equal(ncommitted, 2);
    assert_ahead((int64_t[]){2, 3, -1});
    answer_all();
    next_turn();
    next_turn();
    answer_all();
    next_turn();
    assert_int_equal(ncommitted, 5);
    assert_once_upto(4);
    assert_int_equal(failed, 0);
}

/* Both pages read ahead lose their LRANGE: each read again at its turn. */
static void both_lost(void **st)
{
    dir = 1;
    first_page();
    answer(1);
    answer(1);
    next_turn(); /* page 1 read again; 2 still in the list */
    assert_ahead((int64_t[]){2, -1});
    answer_all(); /* page 1 used; 2 lost: counted, 3 read ahead */
    assert_ahead((int64_t[]){2, 3, -1});
    next_turn(); /* page 2 read again */
    answer_all();
    next_turn();
    answer_all();
    next_turn();
    answer_all();
    assert_int_equal(ncommitted, 5);
    assert_once_upto(4);
    assert_int_equal(failed, 0);
}

/* Dropped with every reply still to come (a failure, another entry's
 * turn, the expander stopping): each page freed by its last reply. */
static void drop_pending(void **st)
{
    dir = 1;
    first_page();
    answer(0); /* LRANGE 1: its lookups sent */
    kn__expand_ahead_drop(&ex);
    assert_null(ex.ahead);
    answer_all();
    assert_int_equal(ncommitted, 1);
}

/* Dropped with the first page read whole and the second on its way. */
static void drop_half(void **st)
{
    dir = 1;
    first_page();
    answer(0); /* LRANGE 1 */
    answer(0); /* LRANGE 2 */
    answer_n(2 * PAGE);
    assert_true(ex.ahead->done);
    assert_false(ex.ahead->next->done);
    kn__expand_ahead_drop(&ex);
    answer_all();
    assert_int_equal(ncommitted, 1);
}

/* Another entry's turn: its page is read for real, the list (the other
 * entry's) dropped; back to the first entry, its page read again. */
static void other_entry(void **st)
{
    first_page();
    answer_all();
    ex.cur = &entry_b;
    ex.page = 0;
    next_turn();
    assert_null(ex.ahead);
    answer_all(); /* b's page 0, b's 1 and 2 read ahead */
    assert_ahead((int64_t[]){1, 2, -1});
    assert_string_equal(ex.ahead->id, "2-0");
    ex.cur = &entry_a;
    ex.page = 1;
    memset(got, 0, sizeof(got));
    next_turn();
    assert_null(ex.ahead);
    answer_all();
    assert_ahead((int64_t[]){2, 3, -1});
    assert_string_equal(ex.ahead->id, "1-0");
    assert_int_equal(failed, 0);
}

/* The wanted page (the list's head, not read yet when its turn came) is
 * used by its last reply, and pages 2 and 3 are read in order after it. */
static void wanted_head(void **st)
{
    dir = 1;
    first_page();
    answer(0); /* LRANGE 1: lookups sent */
    next_turn();
    assert_int_equal(ncommitted, 1);
    answer_all();
    assert_int_equal(ncommitted, 2);
    assert_ahead((int64_t[]){2, 3, -1});
    next_turn();
    next_turn();
    answer_all();
    next_turn();
    assert_int_equal(ncommitted, 5);
    assert_once_upto(4);
}

/* Reading ahead refused (the connection down) part way: the list keeps
 * what was sent; the next page cannot be read for real: a failure. */
static void refused(void **st)
{
    first_page();
    answer_all();
    refuse = 1;
    next_turn(); /* page 1 used; page 3 not sent */
    assert_ahead((int64_t[]){2, -1});
    next_turn(); /* page 2 used; nothing more */
    assert_ahead((int64_t[]){-1});
    next_turn(); /* page 3 cannot be read: a failure */
    assert_int_equal(failed, 1);
    refuse = 0;
    assert_once_upto(2);
}

/* Committed before the last commit's answer (one broadcast alone, the
 * lengths just measured): the head as soon as it is read, never a page
 * behind it. */
static void pipelined(void **st)
{
    dir = 1;
    ex.clen_ms = kn_mono_ms();
    first_page(); /* commit 0 on its way */
    answer(0);    /* LRANGE 1 */
    answer(0);    /* LRANGE 2 */
    answer_n(2 * PAGE);
    assert_int_equal(ncommitted, 2); /* page 1, read whole */
    assert_ahead((int64_t[]){2, 3, -1});
    answer_all(); /* 2 read: inflight 2, no more */
    assert_int_equal(ncommitted, 2);
    ex.inflight = 1; /* commit 0 answered */
    kn__expand_pipeline_next(&ex);
    assert_int_equal(ncommitted, 3);
    assert_ahead((int64_t[]){3, 4, -1});
    answer_all();
    ex.inflight = 1;
    kn__expand_pipeline_next(&ex);
    ex.inflight = 1;
    kn__expand_pipeline_next(&ex);
    assert_int_equal(ncommitted, 5);
    for (size_t i = 0; i < ncommitted; i++)
        assert_int_equal(committed[i], (int64_t)i);
    assert_once_upto(4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(ahead_two, setup, teardown),
        cmocka_unit_test_setup_teardown(second_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(head_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(both_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(drop_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(drop_half, setup, teardown),
        cmocka_unit_test_setup_teardown(other_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(wanted_head, setup, teardown),
        cmocka_unit_test_setup_teardown(refused, setup, teardown),
        cmocka_unit_test_setup_teardown(pipelined, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
