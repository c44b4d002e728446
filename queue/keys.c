/*
 * keys.c - building the key names of keys.h.
 */
#include "queue/keys.h"

#include <stdlib.h>

#include "common/kn.h"

char *kn_key_bc(const char *prefix, const char *name, const char *suffix)
{
    char *p = kn_key_part(name);
    char *k = kn_xasprintf("%sbc:%s%s", prefix, p, suffix);
    free(p);
    return k;
}

static char *tenant_key(const char *prefix, const char *kind,
                        const char *tenant, const char *part)
{
    char *t = kn_key_part(tenant), *p = kn_key_part(part);
    char *k = kn_xasprintf("%s%s:%s:%s", prefix, kind, t, p);
    free(t);
    free(p);
    return k;
}

char *kn_key_rcpt(const char *prefix, const char *tenant, const char *id)
{
    return tenant_key(prefix, "rcpt", tenant, id);
}

char *kn_key_grp(const char *prefix, const char *tenant, const char *group)
{
    return tenant_key(prefix, "grp", tenant, group);
}

char *kn_key_idem(const char *prefix, const char *tenant)
{
    char *t = kn_key_part(tenant);
    char *k = kn_xasprintf("%sidem:%s", prefix, t);
    free(t);
    return k;
}

char *kn_key_cats(const char *prefix, const char *tenant)
{
    char *t = kn_key_part(tenant);
    char *k = kn_xasprintf("%scats:%s", prefix, t);
    free(t);
    return k;
}
