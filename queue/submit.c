/*
 * submit.c - the submit script's argument list for one broadcast: its
 * KN_SUBMIT_NKEYS keys (queue/keys.c), then name, now, idempotency key, the
 * hash fields and the sealed audience (kn_broadcast_submit_args,
 * model/broadcast.c).  Only key names are made here; what is stored is the
 * model's.
 */
#include "submit.h"

#include <stddef.h>

#include "common/argv.h"
#include "common/kn.h"
#include "model/broadcast.h"
#include "queue/keys.h"

void kn_broadcast_submit_call(const struct kn_broadcast *b,
                              const struct kn_keyring *kr, const char *prefix,
                              const char *const *extra, struct kn_argv *a)
{
    struct kn_argv fields, aud;
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
    kn_argv_add(a, b->id);
    kn_argv_addi(a, kn_now_ms());
    kn_argv_add(a, b->key != NULL ? b->key : "");
    kn_argv_addi(a, fields.n);
    kn_argv_extend(a, &fields);
    kn_argv_extend(a, &aud);
    kn_argv_free(&fields);
    kn_argv_free(&aud);
}
