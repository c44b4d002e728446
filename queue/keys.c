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

/* <prefix><kind>:<tenant>:<login>:<more>, each part encoded (a login's
 * failures from one address, of one device). */
static char *login_sub_key(const char *prefix, const char *kind,
                           const char *tenant, const char *login,
                           const char *more)
{
    char *base = tenant_key(prefix, kind, tenant, login);
    char *m = kn_key_part(more);
    char *k = kn_xasprintf("%s:%s", base, m);
    free(base);
    free(m);
    return k;
}

/* <prefix><kind>:<part>, the part encoded. */
static char *one_part_key(const char *prefix, const char *kind,
                          const char *part)
{
    char *p = kn_key_part(part);
    char *k = kn_xasprintf("%s%s:%s", prefix, kind, p);
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
    return one_part_key(prefix, "idem", tenant);
}

char *kn_key_tbcs(const char *prefix, const char *tenant)
{
    return one_part_key(prefix, "tbcs", tenant);
}

char *kn_key_cats(const char *prefix, const char *tenant)
{
    return one_part_key(prefix, "cats", tenant);
}

char *kn_key_supp(const char *prefix, const char *tenant)
{
    return one_part_key(prefix, "supp", tenant);
}

char *kn_key_soft(const char *prefix, const char *tenant)
{
    return one_part_key(prefix, "soft", tenant);
}

char *kn_key_bref(const char *prefix, const char *ref)
{
    return one_part_key(prefix, "bref", ref);
}

char *kn_key_groups(const char *prefix, const char *tenant)
{
    return one_part_key(prefix, "groups", tenant);
}

char *kn_key_rcpts(const char *prefix, const char *tenant)
{
    return one_part_key(prefix, "rcpts", tenant);
}

char *kn_key_templates(const char *prefix, const char *tenant)
{
    return one_part_key(prefix, "tpl", tenant);
}

/* ------------------------------------------------------ staff accounts */

char *kn_key_staff(const char *prefix, const char *tenant, const char *login)
{
    return tenant_key(prefix, "staff", tenant, login);
}

char *kn_key_staffs(const char *prefix, const char *tenant)
{
    return one_part_key(prefix, "staffs", tenant);
}

char *kn_key_session(const char *prefix, const char *hash)
{
    return one_part_key(prefix, "sess", hash);
}

char *kn_key_session_pwtry(const char *prefix, const char *hash)
{
    return one_part_key(prefix, "sesspw", hash);
}

char *kn_key_staff_sessions(const char *prefix, const char *tenant,
                            const char *login)
{
    return tenant_key(prefix, "stsess", tenant, login);
}

char *kn_key_login_fail(const char *prefix, const char *tenant,
                        const char *login, const char *addr)
{
    return login_sub_key(prefix, "lfail", tenant, login, addr);
}

char *kn_key_login_spread(const char *prefix, const char *tenant,
                          const char *login)
{
    return tenant_key(prefix, "lspread", tenant, login);
}

char *kn_key_login_untrusted(const char *prefix, const char *tenant,
                             const char *login)
{
    return tenant_key(prefix, "luntr", tenant, login);
}

char *kn_key_device_fail(const char *prefix, const char *tenant,
                         const char *login, const char *nonce)
{
    return login_sub_key(prefix, "ldev", tenant, login, nonce);
}

char *kn_key_totp_fail(const char *prefix, const char *tenant,
                       const char *login)
{
    return tenant_key(prefix, "totpfail", tenant, login);
}

char *kn_key_totp_used(const char *prefix, const char *tenant,
                       const char *login, long long step)
{
    char *base = tenant_key(prefix, "totpuse", tenant, login);
    char *k = kn_xasprintf("%s:%lld", base, step);
    free(base);
    return k;
}

/* ------------------------------------------------ registration sheets */

char *kn_key_sheet(const char *prefix, const char *sheet_id)
{
    return one_part_key(prefix, "sheet", sheet_id);
}

char *kn_key_reg(const char *prefix, const char *tenant, const char *id)
{
    return tenant_key(prefix, "reg", tenant, id);
}

char *kn_key_sheets(const char *prefix, const char *tenant)
{
    return one_part_key(prefix, "sheets", tenant);
}

char *kn_key_reg_fail(const char *prefix, const char *sheet_id,
                      const char *addr)
{
    char *base = one_part_key(prefix, "rfail", sheet_id);
    char *a = kn_key_part(addr);
    char *k = kn_xasprintf("%s:%s", base, a);
    free(base);
    free(a);
    return k;
}

char *kn_key_reg_ticket(const char *prefix, const char *hash)
{
    return one_part_key(prefix, "rtk", hash);
}

char *kn_key_reg_mails(const char *prefix, const char *addr_index)
{
    return one_part_key(prefix, "rma", addr_index);
}

char *kn_key_reg_starts(const char *prefix, const char *sheet_id)
{
    return one_part_key(prefix, "rst", sheet_id);
}

char *kn_key_reg_verify(const char *prefix, const char *hash)
{
    return one_part_key(prefix, "rver", hash);
}

char *kn_key_regd(const char *prefix, const char *tenant)
{
    return one_part_key(prefix, "regd", tenant);
}

char *kn_key_reg_app(const char *prefix, const char *hash)
{
    return one_part_key(prefix, "rapp", hash);
}

char *kn_key_reg_device(const char *prefix, const char *hash)
{
    return one_part_key(prefix, "rdev", hash);
}

char *kn_key_reg_devices(const char *prefix, const char *tenant)
{
    return one_part_key(prefix, "rdevs", tenant);
}

char *kn_key_reg_line(const char *prefix, const char *hash)
{
    return one_part_key(prefix, "rline", hash);
}

char *kn_key_reg_line_fail(const char *prefix, const char *who)
{
    return one_part_key(prefix, "rlfail", who);
}

char *kn_key_mypage(const char *prefix, const char *kind, const char *hash)
{
    return one_part_key(prefix, kind, hash);
}

char *kn_key_cred(const char *prefix, const char *provider, const char *account)
{
    return tenant_key(prefix, "cred", provider, account);
}
