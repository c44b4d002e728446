/*
 * cred.c - the stored form of a shared provider credential (cred.h): the
 * fields of cred:<provider>:<account> read back, and the sealed value with
 * its name and iat bound inside.
 */
#include "model/cred.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "common/seal.h"

/* A decimal number above 0 that fits, or -1. */
static long long positive(const char *s)
{
    char *end;
    long long v;
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0)
        return -1;
    return v;
}

int kn_cred_record_parse(const char *n, const char *iat, const char *early,
                         const char *v, struct kn_cred_record *out)
{
    long long gen, at;
    memset(out, 0, sizeof(*out));
    if (n == NULL && iat == NULL && early == NULL && v == NULL)
        return KN_ENOENT;
    gen = positive(n);
    at = positive(iat);
    if (gen < 0 || at < 0 || v == NULL || v[0] == '\0' || early == NULL ||
        (strcmp(early, "0") != 0 && strcmp(early, "1") != 0))
        return KN_EINVAL;
    out->gen = (uint64_t)gen;
    out->iat_ms = (int64_t)at;
    out->early = early[0] == '1';
    out->sealed = v;
    return 0;
}

char *kn_cred_seal(const struct kn_keyring *kr, const char *name,
                   int64_t iat_ms, const char *value)
{
    json_t *j = json_pack("{s:s, s:I, s:s}", "c", name, "iat",
                          (json_int_t)iat_ms, "v", value);
    char *plain = j ? json_dumps(j, JSON_COMPACT) : NULL, *sealed;
    json_decref(j);
    if (plain == NULL)
        KN_PANIC("cannot encode a credential (not UTF-8?)");
    sealed = kn_seal(kr, KN_CRED_PURPOSE, plain, strlen(plain));
    kn_free_secret(plain);
    return sealed;
}

int kn_cred_open(const struct kn_keyring *kr, const char *name, int64_t iat_ms,
                 const char *sealed, char **value)
{
    char *plain = NULL;
    json_t *j, *c, *at, *v;
    int rc = KN_EINVAL;
    *value = NULL;
    if (sealed == NULL ||
        kn_unseal(kr, KN_CRED_PURPOSE, sealed, &plain, NULL) < 0)
        return KN_ECRYPTO;
    j = json_loads(plain, 0, NULL);
    kn_free_secret(plain);
    c = json_object_get(j, "c");
    at = json_object_get(j, "iat");
    v = json_object_get(j, "v");
    if (json_is_string(c) && strcmp(json_string_value(c), name) == 0 &&
        json_is_integer(at) && json_integer_value(at) == iat_ms &&
        json_is_string(v) && json_string_length(v) > 0) {
        *value = kn_xstrdup(json_string_value(v));
        rc = 0;
    }
    if (json_is_string(v)) /* wipe the copy jansson holds */
        explicit_bzero((char *)json_string_value(v), json_string_length(v));
    json_decref(j);
    return rc;
}
