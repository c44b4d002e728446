/*
 * test_dir_jobs.c - the directory jobs' slots (dispatcher/http/util.c):
 * a roster import or a sheets job runs on the thread pool; at most two at
 * once and one per tenant, so that one school looping large imports does
 * not lock every other school out (an attack as a hostile tenant found
 * the single slot shared by all).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "common/kn.h"
#include "dispatcher/http/http_int.h"

static void test_one_per_tenant_two_in_all(void **state)
{
    struct http_srv *s = calloc(1, sizeof(*s));
    int a, b;
    (void)state;
    a = kn__httpd_dir_job_take(s, "sakura");
    assert_true(a >= 0);
    /* the same school again: refused while its job runs */
    assert_int_equal(kn__httpd_dir_job_take(s, "sakura"), -1);
    /* another school: served */
    b = kn__httpd_dir_job_take(s, "momo");
    assert_true(b >= 0 && b != a);
    assert_int_equal(s->importing, 2);
    /* a third school waits for a slot, as anyone would */
    assert_int_equal(kn__httpd_dir_job_take(s, "ume"), -1);
    kn__httpd_dir_job_give(s, a);
    assert_int_equal(s->importing, 1);
    /* the slot given back serves the next school; sakura again after */
    a = kn__httpd_dir_job_take(s, "ume");
    assert_true(a >= 0);
    assert_int_equal(kn__httpd_dir_job_take(s, "sakura"), -1);
    kn__httpd_dir_job_give(s, a);
    kn__httpd_dir_job_give(s, b);
    assert_int_equal(s->importing, 0);
    assert_true(kn__httpd_dir_job_take(s, "sakura") >= 0);
    for (size_t i = 0; i < KN_ARRAY_SIZE(s->job_tenant); i++)
        free(s->job_tenant[i]);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_per_tenant_two_in_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
