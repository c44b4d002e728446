/*
 * line_webhook.c - POST /line/webhook: LINE's follow and unfollow events,
 * checked against X-Line-Signature before anything else.
 */
#include "dispatcher/http/http_int.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>

#include "common/argv.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "config/config.h"
#include "queue/keys.h"
#include "queue/scripts.h"
#include "model/line_event.h"

/* ------------------------------------------------------------ LINE webhook */

/*
 * POST /line/webhook: LINE tells us a user blocked (unfollow) or
 * unblocked / added (follow) the official account, or sent it a text: a
 * registration link code (register.c, kn__httpd_line_link) is linked and
 * answered through the Reply API, on its own (the 200 does not wait).  The
 * X-Line-Signature (HMAC of the raw body with line.channel_secret) is the
 * authentication: missing → 401, wrong → 403, and nothing changes.  An
 * unfollowed user's blind index goes into dead:line (the expander makes no job
 * for it); a follow takes it out, each in the order of the events' own
 * timestamps (kn_script_line_events: a redelivered old event changes nothing).
 * Answered 200 once Redis has it.
 */
struct line_marks {
    struct http_srv *srv;
    struct kn_argv events; /* "dead" | "alive", blind index, event ms */
    int dead;
};

static void on_line_event(const char *type, const char *user_id, int unblocked,
                          int64_t timestamp_ms, void *arg)
{
    struct line_marks *m = arg;
    char bi[33];
    int dead = strcmp(type, "unfollow") == 0;
    kn_blind_index(m->srv->d->kr, "line", user_id, bi);
    kn_argv_add(&m->events, dead ? "dead" : "alive");
    kn_argv_add(&m->events, bi);
    kn_argv_addi(&m->events, timestamp_ms);
    m->dead |= dead;
}

/* A text message: a link code (issue 15) starts a link; anything else
 * is not kairan's business (no answer). */
static void on_line_message(const char *user_id, const char *text,
                            const char *reply_token, void *arg)
{
    struct line_marks *m = arg;
    char code[KN_LINE_CODE_DIGITS + 1];
    if (kn_line_link_code(text, code, sizeof(code)) < 0)
        return;
    kn__httpd_line_link(m->srv, user_id, code, reply_token);
    OPENSSL_cleanse(code, sizeof(code));
}

static void on_line_marked(struct batch *b)
{
    struct conn *c = b->c;
    if (c == NULL)
        return;
    if (b->failed) {
        kn__httpd_respond_error(c, 500, NULL,
                                "Redis is unreachable; send it again");
        return;
    }
    kn__httpd_respond_json(c, 200, json_object(), NULL);
}

static void line_mark(struct batch *b, struct kn_argv *events)
{
    struct kn_argv a;
    kn_argv_init(&a);
    kn_argv_add(&a, "EVAL");
    kn_argv_add(&a, kn_script_line_events.src);
    kn_argv_add(&a, "2");
    kn_argv_take(&a, kn__key(b->srv->d, "dead:line"));
    kn_argv_take(&a, kn__key(b->srv->d, "line:event_ms"));
    kn_argv_extend(&a, events);
    kn__httpd_batch_add(b, &a);
    kn_argv_free(&a);
}

void kn__httpd_run_line_hook(struct conn *c)
{
    const char *secret = c->srv->cfg->line_channel_secret;
    struct line_marks m;
    struct batch *b;
    int n;

    /* line_admit checked the secret and the header; the body is at most
     * line.webhook_max_body.  The signature first, then the shared limits
     * (forged requests spend none of them), then the JSON. */
    if (!kn_line_webhook_verify(secret, kn_buf_str(&c->req.body),
                                kn_buf_len(&c->req.body), c->req.line_sig)) {
        kn_log(KN_LOG_WARN, "http", "LINE webhook with a bad signature",
               "source", c->req.source, NULL);
        kn__httpd_hook_bad(c);
        kn__httpd_respond_error(c, 403, NULL, "bad X-Line-Signature");
        return;
    }
    if (!kn__httpd_line_take(c))
        return;
    memset(&m, 0, sizeof(m));
    m.srv = c->srv;
    kn_argv_init(&m.events);
    n = kn_line_webhook_events(kn_buf_str(&c->req.body),
                               kn_buf_len(&c->req.body), on_line_event, &m);
    if (n >= 0)
        kn_line_webhook_messages(kn_buf_str(&c->req.body),
                                 kn_buf_len(&c->req.body), on_line_message, &m);
    if (n < 0) {
        kn__httpd_respond_error(c, 400, NULL,
                                "the body is not a LINE webhook object");
    } else if (n == 0) {
        kn__httpd_respond_json(c, 200, json_object(), NULL);
    } else {
        kn_log(KN_LOG_INFO, "http", "LINE follow/unfollow events", "unfollow",
               m.dead ? "yes" : "no", NULL);
        b = kn__httpd_batch_new(c->srv, c, on_line_marked, NULL);
        line_mark(b, &m.events);
        kn__httpd_batch_end(b);
    }
    kn_argv_free(&m.events);
}
