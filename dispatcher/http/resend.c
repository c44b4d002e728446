/*
 * resend.c - POST /v1/broadcasts/{name}/resend: a new broadcast with the
 * same subject, body, channels, category, priority, drill mark, policy
 * and confirmation (with its answer choices) as an ended one, whose
 * audience is the children of that broadcast not confirmed
 * ({"to": "unconfirmed"}, the default of a broadcast with confirmation)
 * or not reached ({"to": "unreached"}, the default otherwise).  The
 * children are picked by the server (recipients.c walks the audience as
 * the recipients pages do): only directory children still active and
 * with a contact on the channels; inline recipients and children without
 * a contact are counted as skipped (those are to phone).
 *
 * Who may: whoever may read the broadcast (a sender: its own; others of
 * the tenant get 404, as for any read).  The new broadcast goes through
 * the submit path (bc_submit.c) exactly as a POST /v1/broadcasts of its
 * JSON would, with one difference: a sender may name directory ids there
 * because the server picked them from its own broadcast.  The answer is
 * submit's 202 with "resend_of" and "recipients" (how many children).
 */
#include "dispatcher/http/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/kn.h"
#include "queue/keys.h"

/* The fields of bc:<name> read, in this order. */
static const char *const rs_fields[] = {
    "tenant",   "sender_token", "status",  "done_ms",      "ack",
    "category", "priority",     "drill",   "policy",       "channels",
    "subject",  "body",         "choices", "cancelled_ms", "sb"};
enum {
    RS_TENANT,
    RS_OWNER,
    RS_STATUS,
    RS_DONE,
    RS_ACK,
    RS_CATEGORY,
    RS_PRIORITY,
    RS_DRILL,
    RS_POLICY,
    RS_CHANNELS,
    RS_SUBJECT,
    RS_BODY,
    RS_CHOICES,
    RS_CANCELLED,
    RS_SEALED, /* "sb": a guardian's one-time secret in the body */
    RS__N
};

struct resend {
    json_t *bc;            /* the new broadcast, but its audience */
    int which;             /* KN__PICK_* */
    struct kn_argv picked; /* a sender's: the ids before the group check */
    long long skipped;
};

static void resend_free(struct resend *x)
{
    json_decref(x->bc);
    free(x);
}

static void resend_free_arg(void *arg)
{
    resend_free(arg);
}

/* Every child is picked: submit the new broadcast. */
static void resend_go(struct conn *c, struct resend *x, struct kn_argv *ids,
                      long long skipped);

/* A sender's re-send: only the picked children still in the groups its
 * token or account lists now (a sender moved to another class must not
 * reach the old one's children through a re-send of an old broadcast).
 * Replies: one SMISMEMBER per group, over the picked ids. */
static void on_sender_groups(struct batch *b)
{
    struct resend *x = b->arg;
    struct conn *c = b->c;
    struct kn_argv keep;
    if (!kn__httpd_batch_usable(b)) {
        kn_argv_free(&x->picked);
        resend_free(x);
        return;
    }
    kn_argv_init(&keep);
    for (int i = 0; i < x->picked.n; i++) {
        int in = 0;
        for (int g = 0; g < b->n && !in; g++) {
            const redisReply *r = kn__httpd_brep(b, g);
            in = r != NULL && r->type == REDIS_REPLY_ARRAY &&
                 (size_t)i < r->elements &&
                 r->element[i]->type == REDIS_REPLY_INTEGER &&
                 r->element[i]->integer == 1;
        }
        if (in)
            kn_argv_add(&keep, x->picked.v[i]);
    }
    kn_argv_free(&x->picked);
    resend_go(c, x, &keep, x->skipped);
    kn_argv_free(&keep);
}

static void on_picked(struct conn *c, struct kn_argv *ids, long long skipped,
                      void *arg)
{
    struct resend *x = arg;
    const struct token *t = &c->req.tok;
    if (t->role == KN_ROLE_SENDER && (t->groups == NULL || !t->groups[0])) {
        kn__httpd_respond_error(c, 403, "to",
                                "this sender addresses no group now: nobody "
                                "can be re-sent to");
        resend_free(x);
        return;
    }
    if (t->role == KN_ROLE_SENDER && ids->n > 0) {
        struct batch *b;
        char *save = NULL, *list = kn_xstrdup(t->groups ? t->groups : "");
        kn_argv_init(&x->picked);
        for (int i = 0; i < ids->n; i++)
            kn_argv_add(&x->picked, ids->v[i]);
        x->skipped = skipped;
        b = kn__httpd_batch_new(c->srv, c, on_sender_groups, x);
        for (char *g = strtok_r(list, ",", &save); g != NULL;
             g = strtok_r(NULL, ",", &save)) {
            struct kn_argv a;
            kn_argv_init(&a);
            kn_argv_add(&a, "SMISMEMBER");
            kn_argv_take(&a, kn_key_grp(c->srv->d->prefix, t->tenant, g));
            for (int i = 0; i < ids->n; i++)
                kn_argv_add(&a, ids->v[i]);
            kn__httpd_batch_add(b, &a);
            kn_argv_free(&a);
        }
        free(list);
        kn__httpd_batch_end(b);
        return;
    }
    resend_go(c, x, ids, skipped);
}

static void resend_go(struct conn *c, struct resend *x, struct kn_argv *ids,
                      long long skipped)
{
    json_t *aud, *arr;
    char *text;

    if (ids->n == 0) {
        kn__httpd_respond_error(
            c, 409, "to",
            "nobody to re-send to: every child was %s (%lld without a "
            "contact on the channels or given inline: phone them)",
            x->which == KN__PICK_UNCONFIRMED ? "confirmed" : "reached",
            skipped);
        resend_free(x);
        return;
    }
    arr = json_array();
    for (int i = 0; i < ids->n; i++)
        json_array_append_new(arr, json_string(ids->v[i]));
    aud = json_object();
    json_object_set_new(aud, "recipients", arr);
    json_object_set_new(x->bc, "audience", aud);
    text = json_dumps(x->bc, JSON_COMPACT);
    c->req.resend_n = ids->n;
    kn_buf_free(&c->req.body);
    kn_buf_init(&c->req.body, 0);
    kn_buf_add(&c->req.body, text);
    free(text);
    free(c->req.ctype);
    c->req.ctype = kn_xstrdup("application/json");
    resend_free(x);
    kn__httpd_run_bc_submit(c);
}

static int is_one(const char *s)
{
    return s != NULL && strcmp(s, "1") == 0;
}

static void on_head(struct batch *b)
{
    struct conn *c = b->c;
    const redisReply *h = kn__httpd_brep(b, 0);
    struct resend *x = b->arg;
    json_t *bc, *ch;
    char *chans, *save = NULL;

    if (!kn__httpd_batch_usable(b))
        goto fail;
    if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements != RS__N ||
        kn__httpd_relem(h, RS_STATUS) == NULL ||
        !kn__httpd_bc_may_see(c, kn__httpd_relem(h, RS_TENANT),
                              kn__httpd_relem(h, RS_OWNER))) {
        if (h != NULL && h->type == REDIS_REPLY_ARRAY && h->elements == RS__N &&
            kn__httpd_relem(h, RS_STATUS) != NULL)
            c->req.auth_result = "forbidden";
        kn__httpd_respond_error(c, 404, "id", "no broadcast %s", c->req.param);
        goto fail;
    }
    if (strcmp(kn__httpd_relem(h, RS_STATUS), "rejected") == 0 ||
        kn__httpd_relem(h, RS_SUBJECT) == NULL ||
        kn__httpd_relem(h, RS_CHANNELS) == NULL) {
        kn__httpd_respond_error(c, 409, "id",
                                "this broadcast was rejected: there is "
                                "nothing to re-send");
        goto fail;
    }
    if (kn__httpd_relem(h, RS_SEALED) != NULL) {
        kn__httpd_respond_error(c, 409, "id",
                                "this message carried a guardian's one-time "
                                "link or code: it is not sent again");
        goto fail;
    }
    if (kn__httpd_relem(h, RS_DONE) == NULL &&
        kn__httpd_relem(h, RS_CANCELLED) == NULL) {
        kn__httpd_respond_error(c, 409, "id",
                                "this broadcast has not ended yet: re-send "
                                "once it has (or cancel it first)");
        goto fail;
    }
    if (x->which == 0)
        x->which = is_one(kn__httpd_relem(h, RS_ACK)) ? KN__PICK_UNCONFIRMED
                                                      : KN__PICK_UNREACHED;
    if (x->which == KN__PICK_UNCONFIRMED &&
        !is_one(kn__httpd_relem(h, RS_ACK))) {
        kn__httpd_respond_error(c, 400, "to",
                                "this broadcast asked for no confirmation: "
                                "re-send to \"unreached\"");
        goto fail;
    }
    bc = json_object();
    json_object_set_new(bc, "tenant",
                        json_string(kn__httpd_relem(h, RS_TENANT)));
    if (kn__httpd_relem(h, RS_CATEGORY) != NULL)
        json_object_set_new(bc, "category",
                            json_string(kn__httpd_relem(h, RS_CATEGORY)));
    if (kn__httpd_relem(h, RS_PRIORITY) != NULL)
        json_object_set_new(bc, "priority",
                            json_string(kn__httpd_relem(h, RS_PRIORITY)));
    json_object_set_new(bc, "drill",
                        json_boolean(is_one(kn__httpd_relem(h, RS_DRILL))));
    json_object_set_new(bc, "ack",
                        json_boolean(is_one(kn__httpd_relem(h, RS_ACK))));
    if (kn__httpd_relem(h, RS_POLICY) != NULL)
        json_object_set_new(bc, "policy",
                            json_string(kn__httpd_relem(h, RS_POLICY)));
    json_object_set_new(bc, "subject",
                        json_string(kn__httpd_relem(h, RS_SUBJECT)));
    json_object_set_new(bc, "body",
                        json_string(kn__httpd_relem(h, RS_BODY)
                                        ? kn__httpd_relem(h, RS_BODY)
                                        : ""));
    ch = json_array();
    chans = kn_xstrdup(kn__httpd_relem(h, RS_CHANNELS));
    for (char *t = strtok_r(chans, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save))
        json_array_append_new(ch, json_string(t));
    free(chans);
    json_object_set_new(bc, "channels", ch);
    if (is_one(kn__httpd_relem(h, RS_ACK)) &&
        kn__httpd_relem(h, RS_CHOICES) != NULL) {
        json_t *choices = json_loads(kn__httpd_relem(h, RS_CHOICES), 0, NULL);
        if (json_is_array(choices) && json_array_size(choices) > 0)
            json_object_set_new(bc, "choices", choices);
        else
            json_decref(choices);
    }
    x->bc = bc;
    c->req.resend_of = kn_xstrdup(c->req.param);
    kn__httpd_rcpts_pick(c, c->req.param, x->which, on_picked, resend_free_arg,
                         x);
    return;
fail:
    resend_free(x);
}

void kn__httpd_run_bc_resend(struct conn *c)
{
    struct resend *x;
    struct batch *b;
    struct kn_argv a;
    int which = 0;

    if (!kn_id_valid(c->req.param)) {
        kn__httpd_respond_error(c, 404, "id", "no broadcast with such an id");
        return;
    }
    if (kn_buf_len(&c->req.body) > 0) {
        json_t *j;
        const char *to;
        if (c->req.ctype == NULL ||
            strncasecmp(c->req.ctype, "application/json", 16) != 0) {
            kn__httpd_respond_error(c, 415, NULL,
                                    "send JSON: Content-Type: "
                                    "application/json");
            return;
        }
        j = json_loadb(kn_buf_str(&c->req.body), kn_buf_len(&c->req.body),
                       JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(j) ||
            json_object_size(j) > (json_object_get(j, "to") ? 1u : 0u)) {
            json_decref(j);
            kn__httpd_respond_error(c, 400, "json",
                                    "the body must be {} or {\"to\": "
                                    "\"unconfirmed\"|\"unreached\"}");
            return;
        }
        to = json_string_value(json_object_get(j, "to"));
        if (json_object_get(j, "to") != NULL) {
            if (to != NULL && strcmp(to, "unconfirmed") == 0)
                which = KN__PICK_UNCONFIRMED;
            else if (to != NULL && strcmp(to, "unreached") == 0)
                which = KN__PICK_UNREACHED;
            else {
                json_decref(j);
                kn__httpd_respond_error(c, 400, "to",
                                        "\"to\" must be \"unconfirmed\" or "
                                        "\"unreached\"");
                return;
            }
        }
        json_decref(j);
    }
    x = kn_xcalloc(1, sizeof(*x));
    x->which = which;
    b = kn__httpd_batch_new(c->srv, c, on_head, x);
    kn_argv_init(&a);
    kn_argv_add(&a, "HMGET");
    kn_argv_take(&a, kn_key_bc(c->srv->d->prefix, c->req.param, ""));
    for (int i = 0; i < RS__N; i++)
        kn_argv_add(&a, rs_fields[i]);
    kn__httpd_batch_add(b, &a);
    kn_argv_free(&a);
    kn__httpd_batch_end(b);
}
