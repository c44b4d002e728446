/*
 * preview.c - POST /v1/broadcasts/preview: what a broadcast would deliver
 * on each of its channels, and to how many, with nothing stored or sent;
 * and POST /v1/broadcasts/test ("send to me"): the same content as a real
 * one-recipient broadcast to the session's own stored e-mail address.
 *
 * The broadcast is parsed and checked exactly as a submit
 * (kn__httpd_bc_parse: the same parser, the same role rules).  Each
 * channel's text comes from the code its adapter sends with: the e-mail
 * from kn__mail_build read back as a mail client shows it, the push
 * notification as the FCM and APNs adapters cut it (adapters/preview.c),
 * the LINE messages from kn_message_line_texts (model/message.h) as the
 * LINE adapter splits them.  The audience is resolved read-only and
 * bounded (PREVIEW_MAX children), counting what the expander would send
 * (dispatcher/expand_page.c, recipient_jobs).
 */
#include "dispatcher/http/http_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "common/utf8.h"
#include "model/broadcast.h"
#include "model/directory.h"
#include "model/message.h"
#include "queue/keys.h"

#define PREVIEW_MAX                                                            \
    5000 /* children counted at most: their records are parsed on the loop */

/* ---- what each channel shows ---- */

/* A message as the adapters see it (the broadcast's fields borrowed). */
static void preview_msg(const struct kn_broadcast *b, struct kn_message *m)
{
    memset(m, 0, sizeof(*m));
    m->bcast = (char *)"preview";
    m->tenant = b->tenant;
    m->category = b->category;
    m->subject = b->subject;
    m->body = b->body;
    m->urgent = b->urgent;
    m->drill = b->drill;
    m->ack = b->ack;
    m->created_ms = kn_now_ms();
    m->expires_ms = b->expires_ms;
}

static json_t *mail_json(const struct kn_config *cfg, const struct kn_job *job)
{
    struct kn_preview_mail pm;
    json_t *o;
    if (kn_preview_mail(cfg, job, &pm) < 0)
        return json_null();
    o = json_object();
    json_object_set_new(o, "from", kn__httpd_jstr_text(pm.from ? pm.from : ""));
    json_object_set_new(o, "subject",
                        kn__httpd_jstr_text(pm.subject ? pm.subject : ""));
    json_object_set_new(o, "date", kn__httpd_jstr_text(pm.date ? pm.date : ""));
    json_object_set_new(o, "body", kn__httpd_jstr_text(pm.body ? pm.body : ""));
    json_object_set_new(o, "urgent", json_boolean(pm.urgent));
    json_object_set_new(o, "bytes", json_integer((json_int_t)pm.bytes));
    kn_preview_mail_free(&pm);
    return o;
}

static json_t *line_json(const struct kn_broadcast *b, const char *link)
{
    char *texts[KN_MESSAGE_LINE_TEXTS] = {NULL};
    size_t n =
        kn_message_line_texts(b->drill, b->subject, b->body, link, texts);
    json_t *o = json_object(), *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_object();
        json_object_set_new(m, "text", kn__httpd_jstr_text(texts[i]));
        json_object_set_new(
            m, "units",
            json_integer((json_int_t)kn_utf16_len(texts[i], strlen(texts[i]))));
        json_array_append_new(arr, m);
        free(texts[i]);
    }
    json_object_set_new(o, "messages", arr);
    json_object_set_new(o, "max_units", json_integer(KN_MESSAGE_LINE_TEXT_MAX));
    return o;
}

static json_t *push_json(const struct kn_job *job)
{
    static const char *const platforms[] = {"fcm", "apns"};
    json_t *o = json_object();
    for (size_t i = 0; i < KN_ARRAY_SIZE(platforms); i++) {
        char *title = NULL, *body = NULL;
        size_t bytes = 0;
        json_t *p;
        if (kn_preview_push(job, platforms[i], &title, &body, &bytes) < 0) {
            json_object_set_new(o, platforms[i], json_null());
            continue;
        }
        p = json_object();
        json_object_set_new(p, "title", kn__httpd_jstr_text(title));
        json_object_set_new(p, "body", kn__httpd_jstr_text(body));
        json_object_set_new(p, "bytes", json_integer((json_int_t)bytes));
        json_object_set_new(o, platforms[i], p);
        free(title);
        free(body);
    }
    json_object_set_new(o, "max_bytes", json_integer(4096));
    return o;
}

/* The texts of every channel of b. */
static json_t *texts_json(struct conn *c, const struct kn_broadcast *b)
{
    struct kn_message m;
    struct kn_job job;
    json_t *o = json_object();
    char *link = NULL, *subject;
    preview_msg(b, &m);
    memset(&job, 0, sizeof(job));
    job.msg = &m;
    job.rcpt = "preview";
    job.bindex = "0000000000000000";
    job.attempt = 1;
    job.naddr = 1;
    job.key = "preview";
    job.first_ms = kn_now_ms();
    if (b->ack) {
        /* A link of the real length: each guardian gets its own. */
        char *tok =
            kn_ack_token(c->srv->d->kr, "b-00000000-000000000000", "preview");
        link = kn_xasprintf(
            "%s/a/%s",
            c->srv->cfg->http_public_url ? c->srv->cfg->http_public_url : "",
            tok);
        free(tok);
        job.link = link;
    }
    subject = kn_message_subject(b->drill, b->subject);
    json_object_set_new(o, "subject", kn__httpd_jstr_text(subject));
    free(subject);
    for (size_t i = 0; i < b->nchannels; i++) {
        switch (b->channels[i]) {
        case KN_CH_EMAIL:
            job.channel = "email";
            job.addr = "guardian@example.invalid";
            json_object_set_new(o, "email", mail_json(c->srv->cfg, &job));
            break;
        case KN_CH_LINE:
            json_object_set_new(o, "line", line_json(b, link));
            break;
        case KN_CH_PUSH:
            job.channel = "push";
            job.addr = "preview-device-token";
            json_object_set_new(o, "push", push_json(&job));
            break;
        default:
            break;
        }
    }
    free(link);
    return o;
}

/* ---- how many ---- */

struct pv {
    struct kn_broadcast b;
    json_t *texts;
    struct kn_argv ids;
    int truncated;
};

static void pv_free(struct pv *p)
{
    kn_broadcast_free(&p->b);
    json_decref(p->texts);
    kn_argv_free(&p->ids);
    free(p);
}

static int has_contact(json_t *r, enum kn_channel ch)
{
    json_t *t;
    size_t i;
    switch (ch) {
    case KN_CH_EMAIL:
        return json_is_string(json_object_get(r, KN_DIR_EMAIL)) &&
               json_is_string(json_object_get(r, KN_DIR_EMAIL_INDEX));
    case KN_CH_LINE:
        return json_is_string(json_object_get(r, KN_DIR_LINE)) &&
               json_is_string(json_object_get(r, KN_DIR_LINE_INDEX)) &&
               !json_is_true(json_object_get(r, KN_DIR_LINE_DEAD));
    case KN_CH_PUSH:
        json_array_foreach(json_object_get(r, KN_DIR_PUSH), i, t)
        {
            if (json_is_string(json_object_get(t, KN_DIR_PUSH_TOKEN)) &&
                !json_is_true(json_object_get(t, KN_DIR_PUSH_DEAD)))
                return 1;
        }
        return 0;
    default:
        return 0;
    }
}

static size_t push_tokens(json_t *r)
{
    json_t *t;
    size_t i, n = 0;
    json_array_foreach(json_object_get(r, KN_DIR_PUSH), i, t)
    {
        if (json_is_string(json_object_get(t, KN_DIR_PUSH_TOKEN)) &&
            !json_is_true(json_object_get(t, KN_DIR_PUSH_DEAD)))
            n++;
    }
    return n;
}

/*
 * Count one guardian's contact record r into msgs[] (messages per
 * channel) as the expander would make its jobs: policy all, every channel
 * of the broadcast it has (push: per device); preferred, the first in the
 * guardian's own order, then the broadcast's.  Returns 1 if it is reached
 * at all.
 */
static int count_contact(const struct kn_broadcast *b, json_t *r,
                         long long msgs[KN_CH__COUNT])
{
    enum kn_channel order[KN_CH__COUNT];
    size_t n = 0, i;
    json_t *v;
    json_array_foreach(json_object_get(r, KN_DIR_CHANNELS), i, v)
    {
        int c = json_is_string(v) ? kn_channel_parse(json_string_value(v)) : -1;
        for (size_t k = 0; c >= 0 && k < b->nchannels; k++) {
            int dup = 0;
            for (size_t m = 0; m < n; m++)
                dup |= (int)order[m] == c;
            if ((int)b->channels[k] == c && !dup)
                order[n++] = (enum kn_channel)c;
        }
    }
    for (size_t k = 0; k < b->nchannels; k++) {
        int dup = 0;
        for (size_t m = 0; m < n; m++)
            dup |= order[m] == b->channels[k];
        if (!dup)
            order[n++] = b->channels[k];
    }
    for (size_t k = 0; k < n; k++) {
        if (!has_contact(r, order[k]))
            continue;
        msgs[order[k]] +=
            order[k] == KN_CH_PUSH ? (long long)push_tokens(r) : 1;
        if (b->preferred)
            return 1;
    }
    for (size_t k = 0; k < n; k++) {
        if (has_contact(r, order[k]))
            return 1;
    }
    return 0;
}

static void on_pv_records(struct batch *bt)
{
    struct pv *p = bt->arg;
    long long msgs[KN_CH__COUNT] = {0}, children = 0, inactive = 0, unknown = 0,
              none = 0, guardians = 0;
    json_t *j, *rc;
    if (!kn__httpd_batch_usable(bt))
        goto out;
    for (int i = 0; i < p->ids.n; i++) {
        const redisReply *h = kn__httpd_brep(bt, i);
        const char *cj, *act;
        json_t *r, *g;
        size_t k;
        int reached = 0;
        if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != 2 ||
            (cj = kn__httpd_rstr(h->element[0])) == NULL) {
            unknown++;
            continue;
        }
        act = kn__httpd_rstr(h->element[1]);
        if (act != NULL && strcmp(act, "0") == 0) {
            inactive++;
            continue;
        }
        children++;
        if ((r = json_loads(cj, 0, NULL)) == NULL) {
            none++;
            continue;
        }
        reached |= count_contact(&p->b, r, msgs);
        guardians++;
        json_array_foreach(json_object_get(r, KN_DIR_GUARDIANS), k, g)
        {
            reached |= count_contact(&p->b, g, msgs);
            guardians++;
        }
        if (!reached)
            none++;
        json_decref(r);
    }
    /* Inline recipients (an admin's): each one contact. */
    for (size_t i = 0; i < p->b.nrcpts; i++) {
        const struct kn_inline_rcpt *x = &p->b.rcpts[i];
        json_t *r = json_object();
        if (x->email)
            json_object_set_new(r, KN_DIR_EMAIL, json_string("x"));
        if (x->email)
            json_object_set_new(r, KN_DIR_EMAIL_INDEX, json_string("x"));
        if (x->line)
            json_object_set_new(r, KN_DIR_LINE, json_string("x"));
        if (x->line)
            json_object_set_new(r, KN_DIR_LINE_INDEX, json_string("x"));
        if (x->npush > 0) {
            json_t *arr = json_array();
            for (size_t t = 0; t < x->npush; t++)
                json_array_append_new(
                    arr, json_pack("{s:s}", KN_DIR_PUSH_TOKEN, "x"));
            json_object_set_new(r, KN_DIR_PUSH, arr);
        }
        children++;
        guardians++;
        if (!count_contact(&p->b, r, msgs))
            none++;
        json_decref(r);
    }
    rc = json_object();
    json_object_set_new(rc, "children", json_integer(children));
    json_object_set_new(rc, "guardians", json_integer(guardians));
    json_object_set_new(rc, "no_contact", json_integer(none));
    json_object_set_new(rc, "inactive", json_integer(inactive));
    json_object_set_new(rc, "unknown", json_integer(unknown));
    json_object_set_new(rc, "truncated", json_boolean(p->truncated));
    {
        json_t *per = json_object();
        for (size_t i = 0; i < p->b.nchannels; i++)
            json_object_set_new(per, kn_channel_name(p->b.channels[i]),
                                json_integer(msgs[p->b.channels[i]]));
        json_object_set_new(rc, "messages", per);
    }
    j = json_object();
    json_object_set_new(j, "texts", json_incref(p->texts));
    json_object_set_new(j, "recipients", rc);
    json_object_set_new(j, "urgent", json_boolean(p->b.urgent));
    json_object_set_new(j, "drill", json_boolean(p->b.drill));
    json_object_set_new(j, "send_at", kn__httpd_jtime(p->b.send_at_ms));
    json_object_set_new(j, "expires", kn__httpd_jtime(p->b.expires_ms));
    json_object_set_new(j, "stored", json_false());
    kn__httpd_respond_json(bt->c, 200, j, NULL);
out:
    pv_free(p);
}

/* Collect an id; repeats (a child in two groups) go before the read. */
static void pv_add_id(struct pv *p, const char *id)
{
    if (p->ids.n >= 4 * PREVIEW_MAX) {
        p->truncated = 1;
        return;
    }
    kn_argv_add(&p->ids, id);
}

static void on_pv_members(struct batch *bt)
{
    struct pv *p = bt->arg;
    struct batch *b2;
    if (!kn__httpd_batch_usable(bt)) {
        pv_free(p);
        return;
    }
    for (size_t g = 0; g < p->b.ngroups; g++) {
        const redisReply *r = kn__httpd_brep(bt, (int)g);
        for (size_t i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY &&
                           i < r->elements && !p->truncated;
             i++) {
            if (kn__httpd_rstr(r->element[i]) != NULL)
                pv_add_id(p, r->element[i]->str);
        }
    }
    for (size_t i = 0; i < p->b.nrcpt_ids; i++)
        pv_add_id(p, p->b.rcpt_ids[i]);
    if (kn__httpd_ids_unique(&p->ids, PREVIEW_MAX))
        p->truncated = 1;
    b2 = kn__httpd_batch_new(bt->srv, bt->c, on_pv_records, p);
    for (int i = 0; i < p->ids.n; i++) {
        char *k = kn_key_rcpt(bt->srv->d->prefix, p->b.tenant, p->ids.v[i]);
        kn__httpd_batch_cmd(b2, "HMGET", k, KN_DIR_HASH_FIELD, "active", NULL);
        free(k);
    }
    kn__httpd_batch_end(b2);
}

/*
 * "?lang=en": the texts as the readers of that translation get them (its
 * subject and body in place of the Japanese ones).  Returns 0 (no lang,
 * or swapped), or -1 with 400 answered (field "lang": not one of the
 * broadcast's translations).
 */
static void swap_text(char **a, char **b)
{
    char *t = *a;
    *a = *b;
    *b = t;
}

static int preview_lang(struct conn *c, struct kn_broadcast *b)
{
    char *lang = kn__httpd_query_get(c->req.query, "lang");
    size_t i;
    if (lang == NULL)
        return 0;
    for (i = 0; i < b->ntr && strcmp(b->tr[i].lang, lang) != 0; i++)
        ;
    free(lang);
    if (i == b->ntr) {
        kn__httpd_respond_error(c, 400, "lang",
                                "the broadcast has no translation in that "
                                "language: give one of its \"translations\"");
        return -1;
    }
    swap_text(&b->subject, &b->tr[i].subject);
    swap_text(&b->body, &b->tr[i].body);
    return 0;
}

void kn__httpd_run_bc_preview(struct conn *c)
{
    struct pv *p = kn_xcalloc(1, sizeof(*p));
    struct batch *bt;
    kn_argv_init(&p->ids);
    if (kn__httpd_bc_parse(c, &p->b) < 0) {
        kn_argv_free(&p->ids);
        free(p);
        return;
    }
    if (preview_lang(c, &p->b) < 0) {
        kn_broadcast_free(&p->b);
        kn_argv_free(&p->ids);
        free(p);
        return;
    }
    p->texts = texts_json(c, &p->b);
    bt = kn__httpd_batch_new(c->srv, c, on_pv_members, p);
    for (size_t g = 0; g < p->b.ngroups; g++) {
        char *k = kn_key_grp(c->srv->d->prefix, p->b.tenant, p->b.groups[g]);
        kn__httpd_batch_cmd(bt, "SMEMBERS", k, NULL);
        free(k);
    }
    kn__httpd_batch_end(bt);
}

/* ---- POST /v1/broadcasts/test: send to me ---- */

/* The subject's mark on a "send to me": never taken for the real thing. */
static const char test_prefix[] = "【テスト送信】";

struct tst {
    struct kn_broadcast b;
};

static void on_test_addr(struct batch *bt)
{
    struct tst *t = bt->arg;
    struct conn *c = bt->c;
    const redisReply *r = kn__httpd_brep(bt, 0);
    struct kn_broadcast *b = &t->b;
    char *addr = NULL, *subject;
    if (!kn__httpd_batch_usable(bt))
        goto out;
    if (kn__httpd_rstr(r) == NULL || r->str[0] == '\0') {
        kn__httpd_respond_error(
            c, 409, "email",
            "your account has no e-mail address to send a test to; ask an "
            "administrator to add one (kairanctl staff email)");
        goto out;
    }
    if (kn_unseal(bt->srv->d->kr, "email", r->str, &addr, NULL) < 0) {
        kn__httpd_respond_error(c, 500, "email",
                                "your account's e-mail address cannot be "
                                "read (key file?); ask the operator");
        goto out;
    }
    /* The same content, to this one address, by e-mail, now; no
     * escalation, no idempotency key, no other recipient. */
    for (size_t i = 0; i < b->ngroups; i++)
        free(b->groups[i]);
    b->ngroups = 0;
    for (size_t i = 0; i < b->nrcpt_ids; i++)
        free(b->rcpt_ids[i]);
    b->nrcpt_ids = 0;
    for (size_t i = 0; i < b->nrcpts; i++) {
        struct kn_inline_rcpt *x = &b->rcpts[i];
        free(x->id);
        free(x->name);
        kn_free_secret(x->email);
        kn_free_secret(x->line);
        for (size_t k = 0; k < x->npush; k++) {
            free(x->push[k].platform);
            kn_free_secret(x->push[k].token);
        }
        free(x->push);
    }
    free(b->rcpts);
    b->rcpts = kn_xcalloc(1, sizeof(*b->rcpts));
    b->nrcpts = 1;
    b->rcpts[0].id = kn_xstrdup("test-to-me");
    b->rcpts[0].email = addr;
    addr = NULL;
    b->channels[0] = KN_CH_EMAIL;
    b->nchannels = 1;
    b->send_at_ms = 0;
    b->escalate_ms = 0;
    b->escalate_guardian = 0;
    free(b->key);
    b->key = NULL;
    subject = kn_xasprintf("%s%s", test_prefix, b->subject ? b->subject : "");
    free(b->subject);
    b->subject = subject;
    {
        char masked[128];
        kn_mask_address(b->rcpts[0].email, masked, sizeof(masked));
        kn_log(KN_LOG_INFO, "http", "send to me", "login", c->req.tok.login,
               "to", masked, NULL);
    }
    kn__httpd_bc_store(c, b); /* frees b */
    free(t);
    return;
out:
    kn_free_secret(addr);
    kn_broadcast_free(&t->b);
    free(t);
}

void kn__httpd_run_bc_test(struct conn *c)
{
    struct tst *t;
    struct batch *bt;
    char *k;
    if (!c->req.tok.session || c->req.tok.login == NULL) {
        kn__httpd_respond_error(c, 403, NULL,
                                "send to me needs a staff login (a token has "
                                "no address of its own)");
        return;
    }
    t = kn_xcalloc(1, sizeof(*t));
    if (kn__httpd_bc_parse(c, &t->b) < 0) {
        free(t);
        return;
    }
    if (kn_utf8_valid(t->b.subject, strlen(t->b.subject)) &&
        strlen(t->b.subject) + sizeof(test_prefix) >
            (size_t)c->srv->cfg->max_subject) {
        kn__httpd_respond_error(c, 400, "subject",
                                "leave room for the test mark: at most %lld "
                                "bytes",
                                (long long)c->srv->cfg->max_subject -
                                    (long long)sizeof(test_prefix) + 1);
        kn_broadcast_free(&t->b);
        free(t);
        return;
    }
    bt = kn__httpd_batch_new(c->srv, c, on_test_addr, t);
    k = kn_key_staff(c->srv->d->prefix, c->req.tok.tenant, c->req.tok.login);
    kn__httpd_batch_cmd(bt, "HGET", k, "email", NULL);
    free(k);
    kn__httpd_batch_end(bt);
}
