/*
 * submit.c - the submit script's argument list for one broadcast: its
 * KN_SUBMIT_NKEYS keys (queue/keys.c), then name, now, idempotency key, the
 * hash fields and the sealed audience (kn_broadcast_submit_args,
 * model/broadcast.c).  Only key names are made here; what is stored is the
 * model's.
 */
#include "submit.h"

#include <stddef.h>
#include <stdlib.h>

#include <openssl/crypto.h>

#include "common/argv.h"
#include "common/kn.h"
#include "model/broadcast.h"
#include "queue/keys.h"
#include "queue/scripts.h"

static struct kn_argv *tx_add(struct kn_submit_tx *tx)
{
    tx->cmd = kn_xrealloc(tx->cmd, (tx->n + 1) * sizeof(*tx->cmd));
    kn_argv_init(&tx->cmd[tx->n]);
    return &tx->cmd[tx->n++];
}

/* MULTI, DEL stage, RPUSH stage pages (the entries move out of aud), EVAL
 * submit a, EXEC. */
static void tx_build(struct kn_submit_tx *tx, const char *stage,
                     struct kn_argv *aud, struct kn_argv *a, int nkeys)
{
    struct kn_argv *c;
    kn_argv_add(tx_add(tx), "MULTI");
    c = tx_add(tx);
    kn_argv_add(c, "DEL");
    kn_argv_add(c, stage);
    for (int i = 0; i < aud->n; i += KN_SUBMIT_PAGE) {
        c = tx_add(tx);
        kn_argv_add(c, "RPUSH");
        kn_argv_add(c, stage);
        for (int j = i; j < aud->n && j < i + KN_SUBMIT_PAGE; j++) {
            kn_argv_take(c, aud->v[j]);
            aud->v[j] = NULL;
        }
    }
    c = tx_add(tx);
    kn_argv_add(c, "EVAL");
    kn_argv_add(c, kn_script_submit.src);
    kn_argv_addi(c, nkeys);
    kn_argv_move(c, a);
    kn_argv_add(tx_add(tx), "EXEC");
}

void kn_broadcast_submit_call(const struct kn_broadcast *b,
                              const struct kn_keyring *kr, const char *prefix,
                              const char *const *extra, struct kn_argv *a,
                              struct kn_submit_tx *tx)
{
    struct kn_argv fields, aud;
    char *stage = NULL;
    kn_argv_init(&fields);
    kn_argv_init(&aud);
    kn_broadcast_submit_args(b, kr, &fields, &aud);
    for (size_t i = 0; extra != NULL && extra[i] && extra[i + 1]; i += 2) {
        kn_argv_add(&fields, extra[i]);
        kn_argv_add(&fields, extra[i + 1]);
    }
    kn_argv_take(a, kn_key_bc(prefix, b->id, ""));
    kn_argv_take(a, kn_key_bc(prefix, b->id, ":aud"));
    kn_argv_addf(a, "%sbroadcasts", prefix);
    kn_argv_addf(a, "%sbcs", prefix);
    kn_argv_addf(a, "%sactive", prefix);
    kn_argv_take(a, kn_key_idem(prefix, b->tenant));
    kn_argv_addf(a, "%scategories", prefix);
    kn_argv_take(a, kn_key_cats(prefix, b->tenant));
    kn_argv_take(a, kn_key_tbcs(prefix, b->tenant));
    if (tx != NULL) {
        tx->cmd = NULL;
        tx->n = 0;
    }
    if (tx != NULL && aud.n >= KN_SUBMIT_STAGE_MIN) {
        stage = kn_key_bc(prefix, b->id, ":aud_in");
        kn_argv_add(a, stage);
    }
    kn_argv_add(a, b->id);
    kn_argv_addi(a, kn_now_ms());
    kn_argv_add(a, b->key != NULL ? b->key : "");
    kn_argv_addi(a, fields.n);
    kn_argv_move(a, &fields);
    if (stage != NULL) {
        /* The script finds the entries in the staging list. */
        kn_argv_addi(a, aud.n);
        tx_build(tx, stage, &aud, a, KN_SUBMIT_NKEYS + 1);
        free(stage);
        aud.n = 0; /* each entry moved to an RPUSH */
    } else {
        kn_argv_move(a, &aud);
    }
    kn_argv_free(&fields);
    kn_argv_free(&aud);
}

const redisReply *kn_submit_tx_answer(const redisReply *rep)
{
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0)
        return rep->element[rep->elements - 1];
    return rep;
}

void kn_submit_tx_free(struct kn_submit_tx *tx)
{
    for (size_t i = 0; i < tx->n; i++) {
        for (int j = 0; j < tx->cmd[i].n; j++)
            OPENSSL_cleanse(tx->cmd[i].v[j], tx->cmd[i].len[j]);
        kn_argv_free(&tx->cmd[i]);
    }
    free(tx->cmd);
    tx->cmd = NULL;
    tx->n = 0;
}
