/*
 * test_preview.c - adapters/preview.c: the e-mail of a job built by the
 * mail adapters' code and read back as a mail client shows it (Japanese
 * From and Subject decoded from RFC 2047 across folded lines, the text
 * part decoded from base64 with LF line ends, the drill mark and line, the
 * urgent headers, the personal link after the whole body); the push
 * notification as FCM and APNs cut it (at most 4,096 bytes, the body ending
 * in "…", the link kept whole); a bad smtp.from refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "common/kn.h"
#include "config/config.h"

static void load(struct kn_config *cfg, const char *from)
{
    assert_int_equal(kn_config_load(cfg, NULL, NULL), 0);
    free(cfg->smtp_from);
    cfg->smtp_from = strdup(from);
}

static void job_of(struct kn_job *job, struct kn_message *m)
{
    memset(job, 0, sizeof(*job));
    job->msg = m;
    job->channel = "email";
    job->rcpt = "r-1";
    job->bindex = "0123456789abcdef";
    job->addr = "guardian@example.jp";
    job->attempt = 1;
    job->naddr = 1;
    job->key = "k";
}

static void test_mail(void **state)
{
    struct kn_config cfg;
    struct kn_message m = {0};
    struct kn_job job;
    struct kn_preview_mail pm;
    /* Long enough that the encoded Subject folds over several lines. */
    char subject[] =
        "【重要】台風接近に伴う臨時休校と明日以降の登校についてのお知らせ";

    load(&cfg, "桜高校 <noreply@sakura.example.jp>");
    m.bcast = "b-1";
    m.subject = subject;
    m.body = "保護者各位\r\n明日は休校です。";
    m.drill = 1;
    m.urgent = 1;
    job_of(&job, &m);
    job.link = "https://k.example/a/TOKEN";
    assert_int_equal(kn_preview_mail(&cfg, &job, &pm), 0);
    assert_string_equal(pm.from, "桜高校 <noreply@sakura.example.jp>");
    assert_string_equal(pm.to, "guardian@example.jp");
    assert_string_equal(pm.subject,
                        "【訓練】【重要】台風接近に伴う臨時休校と明日以降の"
                        "登校についてのお知らせ");
    assert_non_null(strstr(pm.body, "※これは訓練です。"));
    assert_non_null(strstr(pm.body, "保護者各位\n明日は休校です。"));
    assert_null(strchr(pm.body, '\r'));
    /* The link comes after the whole body, never cut. */
    assert_true(strstr(pm.body, "https://k.example/a/TOKEN") >
                strstr(pm.body, "明日は休校です。"));
    assert_int_equal(pm.urgent, 1);
    assert_non_null(pm.date);
    assert_true(pm.bytes > strlen(pm.body));
    kn_preview_mail_free(&pm);

    m.urgent = 0;
    m.drill = 0;
    job.link = NULL;
    assert_int_equal(kn_preview_mail(&cfg, &job, &pm), 0);
    assert_int_equal(pm.urgent, 0);
    assert_string_equal(pm.body, "保護者各位\n明日は休校です。");
    kn_preview_mail_free(&pm);
    kn_config_free(&cfg);
}

static void test_mail_bad_from(void **state)
{
    struct kn_config cfg;
    struct kn_message m = {0};
    struct kn_job job;
    struct kn_preview_mail pm;
    load(&cfg, "not a mailbox");
    m.subject = "s";
    m.body = "b";
    m.bcast = "b-1";
    job_of(&job, &m);
    assert_int_equal(kn_preview_mail(&cfg, &job, &pm), KN_ECONFIG);
    kn_config_free(&cfg);
}

/* A one-click unsubscribe URL that cannot go into List-Unsubscribe's
 * brackets (longer than 900 bytes with its token, or with a ',' or a '"'
 * in its path, which a configuration checked before kairand refused them
 * may hold): the mail goes without the header, as the SendGrid path sends
 * it, instead of failing for every guardian. */
static void test_mail_unsub_url_unusable(void **state)
{
    static char longurl[1000];
    const char *urls[] = {
        longurl,
        "https://k.example.jp/a,b/u/TOKEN",
        "https://k.example.jp/\"x\"/u/TOKEN",
    };
    struct kn_config cfg;
    struct kn_message m = {0};
    struct kn_job job;
    struct kn_preview_mail pm;

    snprintf(longurl, sizeof(longurl), "https://k.example.jp/u/%0950d", 7);
    load(&cfg, "noreply@sakura.example.jp");
    m.bcast = "b-1";
    m.subject = "お知らせ";
    m.body = "本文";
    job_of(&job, &m);
    for (size_t i = 0; i < KN_ARRAY_SIZE(urls); i++) {
        job.unsub = urls[i];
        assert_int_equal(kn_preview_mail(&cfg, &job, &pm), 0);
        assert_string_equal(pm.body, "本文");
        kn_preview_mail_free(&pm);
    }
    job.unsub = "https://k.example.jp/u/TOKEN";
    assert_int_equal(kn_preview_mail(&cfg, &job, &pm), 0);
    kn_preview_mail_free(&pm);
    kn_config_free(&cfg);
}

static void test_push_cut(void **state)
{
    static const char *const plats[] = {"fcm", "apns"};
    struct kn_message m = {0};
    struct kn_job job;
    size_t n = 3000 * 3 + 1;
    char *body = malloc(n);
    for (size_t i = 0; i + 3 < n; i += 3)
        memcpy(body + i, "あ", 3);
    body[n - 1] = '\0';
    m.bcast = "b-1";
    m.subject = "運動会";
    m.body = body;
    m.expires_ms = kn_now_ms() + 3600000;
    job_of(&job, &m);
    job.channel = "push";
    job.addr = "device-token";
    job.link = "https://k.example/a/TOKEN";
    for (size_t i = 0; i < 2; i++) {
        char *title = NULL, *text = NULL;
        size_t bytes = 0;
        job.platform = plats[i];
        assert_int_equal(kn_preview_push(&job, plats[i], &title, &text, &bytes),
                         0);
        assert_string_equal(title, "運動会");
        assert_true(bytes <= 4096);
        assert_true(strlen(text) < strlen(body));
        /* Cut before the link, which is whole at the end. */
        assert_non_null(strstr(text, "…"));
        assert_non_null(strstr(text, "https://k.example/a/TOKEN"));
        free(title);
        free(text);
    }
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mail),
        cmocka_unit_test(test_mail_bad_from),
        cmocka_unit_test(test_push_cut),
        cmocka_unit_test(test_mail_unsub_url_unusable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
