/*
 * test_child.c - every child of the audience (model/child.c): the states
 * of the report and the recipients list, a state value read in place, a
 * child's own states before a sibling's delivery, the
 * contacts of a record with several guardians on a broadcast's channels,
 * the masked phone number; a LINE multicast recorded once read per member
 * (model/child.c and queue/rstates.c, docs/multicast-record.md).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/kn.h"
#include "model/child.h"
#include "queue/rstates.h"

static void test_classify(void **state)
{
    assert_int_equal(kn_child_classify(5, 0, 0), KN_CHILD_REACHED);
    assert_int_equal(kn_child_classify(5, 1, 0), KN_CHILD_VIA_SIBLING);
    assert_int_equal(kn_child_classify(0, 0, 0), KN_CHILD_NOT_REACHED);
    assert_int_equal(kn_child_classify(0, 0, 1), KN_CHILD_NO_CONTACT);
    /* a delivery wins over "no contact" (a state of its own) */
    assert_int_equal(kn_child_classify(5, 0, 1), KN_CHILD_REACHED);
    assert_string_equal(kn_child_state_name(KN_CHILD_NO_CONTACT), "no_contact");
    assert_string_equal(kn_child_state_name(KN_CHILD_VIA_SIBLING),
                        "reached_via_sibling");
    assert_string_equal(kn_child_state_name((enum kn_child_state)9), "unknown");
}

static void test_state_value(void **state)
{
    struct kn_child_st st;
    assert_int_equal(kn_child_st_parse("d|c-1|1700000000000|250 ok", &st), 0);
    assert_int_equal(st.code, 'd');
    assert_true(kn_child_st_is(&st, "c-1"));
    assert_false(kn_child_st_is(&st, "c-10"));
    assert_false(kn_child_st_is(&st, "c-"));
    assert_true(st.ms == 1700000000000LL);
    assert_string_equal(st.detail, "250 ok");
    assert_int_equal(kn_child_st_parse("q|c-2", &st), 0);
    assert_true(kn_child_st_is(&st, "c-2"));
    assert_true(st.ms == 0);
    assert_string_equal(st.detail, "");
    assert_int_equal(kn_child_st_parse("dx", &st), KN_EINVAL);
    assert_int_equal(kn_child_st_parse(NULL, &st), KN_EINVAL);
    assert_string_equal(kn_child_code_name('x'), "expired");
    assert_string_equal(kn_child_code_name('?'), "unknown");
    assert_string_equal(kn_child_code_name('b'), "bounced");
    assert_string_equal(kn_child_code_name('s'), "suppressed");
}

/* A member "q|<rcpt>|<gid>" and its group's record "@<gid>". */
static void test_group(void **state)
{
    char *s;
    assert_string_equal(kn_child_st_group("q|c-1|line:p3.0"), "line:p3.0");
    assert_null(kn_child_st_group("q|c-1"));
    assert_null(kn_child_st_group("d|c-1|5|200"));
    assert_null(kn_child_st_group("r|c-1|429"));
    assert_null(kn_child_st_group(NULL));
    assert_null(kn_child_st_group("q"));
    assert_null(kn_child_st_resolve("d|c-1|5|200", "d|6|2|200"));
    s = kn_child_st_resolve("q|c-1|line:p3.0", "d|1700000000000|500|200 ok|x");
    assert_string_equal(s, "d|c-1|1700000000000|200 ok|x");
    free(s);
    /* not delivered, or not a record kairan writes: still queued */
    const char *notyet[] = {NULL,      "-",     "d|",       "d||2|x",
                            "d|5|x|y", "d|5|2", "d|-5|2|x", "f|5|2|x"};
    for (size_t i = 0; i < sizeof(notyet) / sizeof(notyet[0]); i++) {
        s = kn_child_st_resolve("q|c-1|line:p3.0", notyet[i]);
        assert_string_equal(s, "q|c-1");
        free(s);
    }
    s = kn_child_st_resolve("q||g", "d|5|1|");
    assert_string_equal(s, "d||5|");
    free(s);
}

/* An HGETALL reply as hiredis makes it, from RESP bytes. */
static redisReply *reply_of(const char *resp)
{
    redisReader *rd = redisReaderCreate();
    void *rep = NULL;
    assert_int_equal(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &rep), REDIS_OK);
    assert_non_null(rep);
    redisReaderFree(rd);
    return rep;
}

static void test_rstates(void **state)
{
    /* two groups (one delivered, one marked), a member of each, an e-mail
     * record: the "@" fields leave, the members read per member */
    redisReply *r = reply_of("*10\r\n"
                             "$10\r\n@line:p0.0\r\n$10\r\nd|77|2|200\r\n"
                             "$6\r\nline:a\r\n$14\r\nq|r1|line:p0.0\r\n"
                             "$7\r\nemail:e\r\n$4\r\nq|r3\r\n"
                             "$10\r\n@line:p1.0\r\n$1\r\n-\r\n"
                             "$6\r\nline:b\r\n$14\r\nq|r2|line:p1.0\r\n");
    kn_rstates_resolve(r);
    assert_int_equal(r->elements, 6);
    assert_string_equal(r->element[0]->str, "line:a");
    assert_string_equal(r->element[1]->str, "d|r1|77|200");
    assert_int_equal(r->element[1]->len, strlen("d|r1|77|200"));
    assert_string_equal(r->element[3]->str, "q|r3");
    assert_string_equal(r->element[4]->str, "line:b");
    assert_string_equal(r->element[5]->str, "q|r2");
    freeReplyObject(r);
    /* no group: untouched; not a hash's reply: untouched */
    r = reply_of("*2\r\n$6\r\nline:a\r\n$14\r\nq|r1|line:p0.0\r\n");
    kn_rstates_resolve(r);
    assert_int_equal(r->elements, 2);
    assert_string_equal(r->element[1]->str, "q|r1|line:p0.0");
    freeReplyObject(r);
    r = reply_of("*3\r\n$2\r\n@a\r\n$1\r\nx\r\n:5\r\n");
    kn_rstates_resolve(r);
    assert_int_equal(r->elements, 3);
    freeReplyObject(r);
    r = reply_of("-ERR no\r\n");
    kn_rstates_resolve(r);
    freeReplyObject(r);
    kn_rstates_resolve(NULL);
}

static void test_resolve(void **state)
{
    struct kn_child_seen seen;
    /* its own delivery decides, a sibling's earlier one does not count */
    const char *own[] = {"d|c-2|100|ok", "d|c-1|200|ok", NULL};
    /* no own state: the sibling's first delivery */
    const char *sib[] = {"d|c-1|300|ok", "f|c-3|0|bounce", "d|c-3|250|ok"};
    /* own state failed: not reached, whatever a sibling got */
    const char *failed[] = {"f|c-2|100|bounce", "d|c-1|50|ok"};
    /* contacts, nothing delivered to them */
    const char *none[] = {NULL, "q|c-1"};

    assert_int_equal(kn_child_resolve("c-1", own, 3, &seen), KN_CHILD_REACHED);
    assert_true(seen.own && seen.reached_ms == 200 && seen.via == -1);
    assert_int_equal(kn_child_resolve("c-2", sib, 3, &seen),
                     KN_CHILD_VIA_SIBLING);
    assert_true(!seen.own && seen.via == 2 && seen.reached_ms == 250);
    assert_int_equal(kn_child_resolve("c-2", failed, 2, &seen),
                     KN_CHILD_NOT_REACHED);
    assert_true(seen.own && seen.via == -1 && seen.reached_ms == 0);
    assert_int_equal(kn_child_resolve("c-2", none, 2, &seen),
                     KN_CHILD_NOT_REACHED);
    assert_int_equal(kn_child_resolve("c-2", NULL, 0, &seen),
                     KN_CHILD_NO_CONTACT);
    assert_true(seen.via == -1);
}

static void test_contacts(void **state)
{
    json_t *c = json_loads(
        "{\"id\":\"s-1\",\"e\":\"E1\",\"ei\":\"a1\",\"l\":\"L1\",\"li\":\"b1\","
        "\"ldead\":true,\"p\":[{\"k\":\"fcm\",\"t\":\"T1\",\"ti\":\"c1\"},"
        "{\"k\":\"fcm\",\"t\":\"T2\",\"ti\":\"c2\",\"dead\":true}],"
        "\"g\":[{\"e\":\"E2\",\"ei\":\"a2\",\"l\":\"L2\",\"li\":\"b2\"},"
        "{\"ph\":\"P3\"},{\"e\":\"E4\"}]}",
        0, NULL);
    struct kn_child_contact k[KN_CHILD_MAX_CONTACTS];
    size_t n;
    assert_non_null(c);
    n = kn_child_contacts(c, "email,line,push", k, KN_CHILD_MAX_CONTACTS);
    /* e1, p1 (l1 dead, p2 dead), e2, l2; the third guardian has a phone
     * only, the fourth an address without its index */
    assert_int_equal(n, 4);
    assert_string_equal(k[0].field, "email:a1");
    assert_int_equal(k[0].guardian, 0);
    assert_string_equal(k[0].sealed, "E1");
    assert_string_equal(k[1].field, "push:c1");
    assert_string_equal(k[1].channel, "push");
    assert_string_equal(k[2].field, "email:a2");
    assert_int_equal(k[2].guardian, 1);
    assert_string_equal(k[3].field, "line:b2");
    n = kn_child_contacts(c, "line", k, KN_CHILD_MAX_CONTACTS);
    assert_int_equal(n, 1);
    assert_string_equal(k[0].field, "line:b2");
    assert_int_equal(kn_child_contacts(c, "", k, KN_CHILD_MAX_CONTACTS), 0);
    assert_int_equal(kn_child_contacts(c, "email,line,push", k, 2), 2);
    assert_int_equal(kn_child_contacts(NULL, "email", k, 2), 0);
    json_decref(c);
}

static void test_phone(void **state)
{
    char *m = kn_child_mask_phone("090-1234-5678");
    assert_string_equal(m, "***5678");
    free(m);
    m = kn_child_mask_phone("03-12-34");
    assert_string_equal(m, "***12-34");
    free(m);
    m = kn_child_mask_phone("12");
    assert_string_equal(m, "***12");
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify), cmocka_unit_test(test_state_value),
        cmocka_unit_test(test_group),    cmocka_unit_test(test_rstates),
        cmocka_unit_test(test_resolve),  cmocka_unit_test(test_contacts),
        cmocka_unit_test(test_phone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
