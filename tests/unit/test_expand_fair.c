/*
 * test_expand_fair.c - the expander's turns (dispatcher/expand_fair.c):
 * urgent strictly before normal, tenants in turn by deficit round robin,
 * a tenant's own broadcasts in arrival order, a full stream ending a
 * turn, and the depth limit's bounds.  The file is included to reach its
 * statics; what it calls in the rest of the expander is stubbed here, so
 * nothing touches Redis or a loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dispatcher/expand_fair.c"

static int resumed, waits;

void kn__expand_resume(struct kn_expander *e)
{
    resumed++;
}

void kn__expand_later(struct kn_expander *e, void (*step)(struct kn_expander *),
                      int64_t ms)
{
    waits++;
}

void kn__expand_page_clear(struct kn_expander *e)
{
}

void kn__expand_xentry_free(struct xentry *x)
{
    if (x == NULL)
        return;
    free(x->id);
    free(x->bc);
    free(x->raw);
    free(x);
}

void kn_queue_keep(struct kn_redis *r, const char *stream, const char *consumer,
                   const char *id)
{
}

static struct kn_config cfg;
static struct kn_daemon d;
static struct kn_expander ex;

static int setup(void **st)
{
    memset(&cfg, 0, sizeof(cfg));
    memset(&d, 0, sizeof(d));
    memset(&ex, 0, sizeof(ex));
    cfg.expand_page = 500;
    cfg.max_depth = 200000;
    cfg.expand_ahead_ms = 1000;
    d.cfg = &cfg;
    ex.d = &d;
    resumed = waits = 0;
    return 0;
}

static int teardown(void **st)
{
    kn__expand_xentry_free(ex.cur);
    free(ex.tenant);
    kn__expand_fair_clear(&ex);
    return 0;
}

/* A resolved broadcast of tenant with n recipients joins the turns. */
static void admit(const char *id, const char *tenant, int urgent, int64_t n)
{
    struct xentry *x = kn_xcalloc(1, sizeof(*x));
    x->id = kn_xstrdup(id);
    ex.cur = x;
    ex.tenant = kn_xstrdup(tenant);
    ex.urgent = urgent;
    ex.aud_n = n;
    ex.page = 0;
    kn__expand_admitted(&ex);
    assert_null(ex.cur);
}

/* The next turn: the entry id whose page is expanded, or NULL. */
static const char *next(void)
{
    if (!kn__expand_fair_next(&ex))
        return NULL;
    return ex.cur->id;
}

/* Where page p starts in an audience (a first page of 50, then 500). */
static int64_t start_of(int64_t p)
{
    return p == 0 ? 0 : 50 + (p - 1) * 500;
}

/* The page of the current entry is committed; the entry ends when its
 * audience is through (freed, as kn__expand_done would). */
static void page_done(void)
{
    struct xbc b = {.page = ex.page, .aud_n = ex.aud_n};
    int64_t cost = page_cost(&ex, &b);
    ex.page++;
    if (start_of(ex.page) < ex.aud_n) {
        kn__expand_turn_over(&ex, cost);
        return;
    }
    kn__expand_xentry_free(ex.cur);
    ex.cur = NULL;
    free(ex.tenant);
    ex.tenant = NULL;
}

/* One turn after another: the ids, joined by spaces, for k turns. */
static void turns(char *buf, size_t size, int k)
{
    buf[0] = '\0';
    for (int i = 0; i < k; i++) {
        const char *id = next();
        if (id == NULL)
            break;
        if (buf[0] != '\0')
            strncat(buf, " ", size - strlen(buf) - 1);
        strncat(buf, id, size - strlen(buf) - 1);
        page_done();
    }
}

static void test_tenants_take_turns(void **st)
{
    char got[256];
    admit("A", "board", 0, 200000);
    admit("B", "school", 0, 30);
    /* The board's first page (50) leaves 450 of its quantum, less than
     * its next page: the school's turn; its 30 are one page. */
    turns(got, sizeof(got), 5);
    assert_string_equal(got, "A B A A A");
}

static void test_urgent_strictly_first(void **st)
{
    char got[256];
    admit("N1", "board", 0, 100000);
    admit("N2", "school", 0, 100000);
    admit("U1", "city", 1, 1200); /* 50 + 500 + 500 + 150 */
    turns(got, sizeof(got), 6);
    assert_string_equal(got, "U1 U1 U1 U1 N1 N2");
}

static void test_own_broadcasts_in_order(void **st)
{
    char got[256];
    admit("A1", "board", 0, 50);
    admit("A2", "board", 0, 50);
    admit("B1", "school", 0, 50);
    /* A1's page costs 50 of 500: A2 goes on in the same turn. */
    turns(got, sizeof(got), 4);
    assert_string_equal(got, "A1 A2 B1");
}

static void test_deficit_carries_over(void **st)
{
    char got[256];
    /* Three tenants, each one big broadcast: after the first pages, one
     * page each per round, round robin. */
    admit("A", "a", 0, 100000);
    admit("B", "b", 0, 100000);
    admit("C", "c", 0, 100000);
    turns(got, sizeof(got), 9);
    assert_string_equal(got, "A B C A B C A B C");
}

static void test_full_stream_ends_the_turn(void **st)
{
    admit("A", "board", 0, 100000);
    admit("B", "school", 0, 30);
    assert_string_equal(next(), "A");
    kn__expand_blocked(&ex); /* A's stream is full */
    assert_int_equal(waits, 0);
    assert_string_equal(next(), "B");
    kn__expand_blocked(&ex); /* B's too: a whole round full, wait */
    assert_int_equal(waits, 1);
    assert_string_equal(next(), "A");
    assert_int_equal(kn__expand_fair_count(&ex), 1);
    assert_true(kn__expand_fair_has(&ex, "B"));
    assert_false(kn__expand_fair_has(&ex, "A")); /* the current one */
}

static void test_depth_limit_bounds(void **st)
{
    /* Nothing measured yet: the floor. */
    assert_int_equal(kn__expand_depth_limit(&ex, 3, 0), KN_EXPAND_MIN_AHEAD);
    /* A measured rate: its expand_ahead_ms' worth, capped (the last
     * sample kept "recent" so that no new one changes the rate). */
    ex.qs[3].rate = 5.0; /* jobs per ms */
    ex.qs[3].at_ms = kn_mono_ms() + 3600 * 1000;
    assert_int_equal(kn__expand_depth_limit(&ex, 3, 0), 5000);
    cfg.max_depth = 300;
    assert_int_equal(kn__expand_depth_limit(&ex, 3, 0), 300);
}

/* The first drain sample of a stream is its rate, not a tenth of it (an
 * average climbing from 0 kept the floor in charge for a second).  10,000
 * jobs drained since a look about 100 ms ago: averaged from 0 the limit
 * would be exactly 10,000 whatever the time taken (below 1 s); taken
 * whole it is 10,000 / elapsed s, more. */
static void test_depth_limit_first_sample(void **st)
{
    ex.qs[4].at_ms = kn_mono_ms() - 100;
    ex.qs[4].len = 10000;
    assert_true(kn__expand_depth_limit(&ex, 4, 0) > 10000);
    assert_true(ex.qs[4].rate > 10.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tenants_take_turns, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_urgent_strictly_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_own_broadcasts_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deficit_carries_over, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_full_stream_ends_the_turn, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_depth_limit_first_sample, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_depth_limit_bounds, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
