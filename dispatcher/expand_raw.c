/*
 * expand_raw.c - raw entries of the broadcasts stream: a producer that
 * XADDs {job: <JSON>} itself.  The JSON is validated like kairanctl
 * validates it and stored sealed (or kept as `rejected` with its reason,
 * addresses masked); the plaintext entry is deleted at once.  Nothing of
 * a refused entry is logged but its reason.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/argv.h"
#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"
#include "dispatcher/daemon.h"
#include "dispatcher/expand.h"
#include "queue/submit.h"
#include "queue/scripts.h"
#include "queue/keys.h"

static void reject_raw(struct kn_expander *e, const char *err,
                       const char *field);

static void on_raw_stored(struct kn_redis *r, redisReply *rep, void *arg)
{
    struct kn_expander *e = arg;
    if (rep->type == REDIS_REPLY_ERROR) {
        /* Kept (pending) and counted: parked masked in the DLQ in the
         * end, never dropped without a trace. */
        kn__expand_failed(e, rep);
        return;
    }
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_INTEGER &&
        rep->element[0]->integer == 2) {
        /* Valid, but its category is not the tenant's: kept as rejected
         * like any other refused entry, with what to do about it. */
        reject_raw(e,
                   "category: not one of the tenant's categories: use "
                   "notice, event, emergency, drill or one its administrators "
                   "added (kairanctl category add)",
                   "category");
        return;
    }
    kn__expand_ack_del(e);
}

/*
 * Keep a refused raw entry visible as rejected, under a name of kairan's
 * made from the stream entry id (so that reading the entry again after a
 * crash keeps it once): the producer's id is only a key within its
 * tenant, and this entry may not even have a valid tenant.
 */
static void reject_raw(struct kn_expander *e, const char *err,
                       const char *field)
{
    struct kn_daemon *d = e->d;
    struct kn_argv a;
    json_t *root = json_loadb(e->cur->raw, e->cur->rawlen, 0, NULL);
    json_t *tv;
    char id[64];
    char *masked = kn_broadcast_mask_json(e->cur->raw, e->cur->rawlen);
    kn_argv_init(&a);
    snprintf(id, sizeof(id), "rejected-%s", e->cur->id);
    tv = json_object_get(root, "tenant");
    kn_log(KN_LOG_WARN, "expand", "broadcast rejected", "bc", id, "reason", err,
           NULL);
    kn_argv_take(&a, kn_key_bc(d->prefix, id, ""));
    kn_argv_take(&a, kn__key(d, "rejected"));
    kn_argv_take(&a, kn__key(d, "bcs"));
    kn_argv_add(&a, id);
    kn_argv_addi(&a, kn_now_ms());
    kn_argv_add(&a, err);
    kn_argv_add(&a, field);
    /* Not JSON: nothing of it is kept (it may hold anything). */
    if (masked == NULL)
        masked = kn_xasprintf("(not JSON: %zu bytes)", e->cur->rawlen);
    kn_argv_take(&a, masked);
    /* The tenant only when it is a valid one (it may be an address in
     * the wrong place). */
    kn_argv_add(&a, json_is_string(tv) && kn_tenant_valid(json_string_value(tv))
                        ? json_string_value(tv)
                        : "");
    kn__expand_submit_keys(e, id, NULL);
    json_decref(root);
    kn__eval_reliable(d, &kn_script_reject, on_raw_stored, e, NULL, 3, &a);
}

/*
 * A producer XADDed the JSON itself.  Validate it like kairanctl would;
 * store it sealed (or rejected, masked) and delete the plaintext entry.
 */
void kn__expand_raw(struct kn_expander *e)
{
    struct kn_daemon *d = e->d;
    const struct kn_config *cfg = d->cfg;
    /* gaiji kept: this producer is answered by no one, and a notice with
     * a box reaches people, a rejected one nobody (model/broadcast.h) */
    struct kn_limits lim = {cfg->max_subject, cfg->max_body,
                            cfg->max_recipients, cfg->default_ttl_ms, 1};
    struct kn_broadcast b;
    char err[512], field[128];
    struct kn_argv a;
    int rc = kn_broadcast_parse(e->cur->raw, e->cur->rawlen, &lim, &b, err,
                                sizeof(err), field, sizeof(field));
    kn_argv_init(&a);
    if (rc < 0) {
        kn_argv_free(&a);
        reject_raw(e, err, field);
        return;
    }
    /* The stream entry id is the key of an entry without one, so that
     * reading it again after a crash stores it once. */
    b.id = kn_broadcast_new_id();
    if (b.key == NULL)
        b.key = kn_xstrdup(e->cur->id);
    if (b.sender == NULL)
        b.sender = kn_xstrdup("xadd");
    kn_broadcast_submit_call(&b, d->kr, d->prefix, NULL, &a, NULL);
    kn__expand_submit_keys(e, b.id, b.tenant);
    kn_log(KN_LOG_INFO, "expand", "raw broadcast stored sealed", "bc", b.id,
           NULL);
    kn_broadcast_free(&b);
    kn__eval_reliable(d, &kn_script_submit, on_raw_stored, e, NULL,
                      KN_SUBMIT_NKEYS, &a);
}
