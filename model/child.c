/*
 * child.c - every child of the audience and how it was reached (child.h).
 */
#include "model/child.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "model/directory.h"

static const char *const state_names[KN_CHILD__STATES] = {
    "no_contact", "not_reached", "reached_via_sibling", "reached"};

const char *kn_child_state_name(enum kn_child_state s)
{
    return (unsigned)s < KN_CHILD__STATES ? state_names[s] : "unknown";
}

enum kn_child_state kn_child_classify(int64_t reached_ms, int via_sibling,
                                      int no_contact)
{
    if (reached_ms > 0)
        return via_sibling ? KN_CHILD_VIA_SIBLING : KN_CHILD_REACHED;
    return no_contact ? KN_CHILD_NO_CONTACT : KN_CHILD_NOT_REACHED;
}

int kn_child_st_parse(const char *v, struct kn_child_st *st)
{
    const char *p, *q;
    memset(st, 0, sizeof(*st));
    st->detail = "";
    if (v == NULL || strlen(v) < 3 || v[1] != '|')
        return KN_EINVAL;
    st->code = v[0];
    p = v + 2;
    q = strchr(p, '|');
    st->rcpt = p;
    st->rcpt_len = q ? (size_t)(q - p) : strlen(p);
    if (q != NULL) {
        st->ms = strtoll(q + 1, NULL, 10);
        q = strchr(q + 1, '|');
        if (q != NULL)
            st->detail = q + 1;
    }
    return 0;
}

int kn_child_st_is(const struct kn_child_st *st, const char *id)
{
    return id != NULL && strlen(id) == st->rcpt_len &&
           memcmp(st->rcpt, id, st->rcpt_len) == 0;
}

const char *kn_child_st_group(const char *v)
{
    const char *bar;
    if (v == NULL || v[0] != 'q' || v[1] != '|')
        return NULL;
    bar = strchr(v + 2, '|');
    return bar != NULL ? bar + 1 : NULL;
}

char *kn_child_st_resolve(const char *v, const char *g)
{
    const char *gid = kn_child_st_group(v), *p, *end;
    int rlen;
    long long ms;
    if (gid == NULL)
        return NULL;
    rlen = (int)(gid - 1 - (v + 2));
    /* "d|<ms>|<members>|<detail>": digits, then digits, then anything */
    if (g != NULL && g[0] == 'd' && g[1] == '|' && g[2] >= '0' && g[2] <= '9') {
        ms = strtoll(g + 2, (char **)&end, 10);
        if (end > g + 2 && *end == '|') {
            p = end + 1;
            while (*p >= '0' && *p <= '9')
                p++;
            if (p > end + 1 && *p == '|')
                return kn_xasprintf("d|%.*s|%lld|%s", rlen, v + 2, ms, p + 1);
        }
    }
    return kn_xasprintf("q|%.*s", rlen, v + 2);
}

const char *kn_child_code_name(char code)
{
    switch (code) {
    case 'q':
        return "queued";
    case 'r':
        return "retrying";
    case 'd':
        return "delivered";
    case 'f':
        return "failed";
    case 'x':
        return "expired";
    case 'c':
        return "cancelled";
    case 'b':
        return "bounced";
    case 's':
        return "suppressed";
    case 'o':
        return "opted_out"; /* the guardian's own choice (issue 16) */
    default:
        return "unknown";
    }
}

enum kn_child_state kn_child_resolve(const char *id, const char *const *states,
                                     size_t n, struct kn_child_seen *seen)
{
    struct kn_child_st s;
    memset(seen, 0, sizeof(*seen));
    seen->via = -1;
    /* its own states first: they decide */
    for (size_t i = 0; i < n; i++) {
        if (kn_child_st_parse(states[i], &s) < 0 || !kn_child_st_is(&s, id))
            continue;
        seen->own = 1;
        if (s.code == 'd' && s.ms > 0 &&
            (seen->reached_ms == 0 || s.ms < seen->reached_ms))
            seen->reached_ms = s.ms;
    }
    /* without one: the first delivery of a sibling to its addresses */
    for (size_t i = 0; !seen->own && i < n; i++) {
        if (kn_child_st_parse(states[i], &s) < 0 || s.code != 'd' ||
            s.ms <= 0 || (seen->via >= 0 && s.ms >= seen->reached_ms))
            continue;
        seen->via = (long)i;
        seen->reached_ms = s.ms;
    }
    return kn_child_classify(seen->reached_ms, seen->via >= 0,
                             !seen->own && n == 0);
}

/* 1 if ch is one of the comma-separated channels. */
static int on_channel(const char *channels, const char *ch)
{
    size_t n = strlen(ch);
    for (const char *p = channels; p && *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && strncmp(p, ch, n) == 0)
            return 1;
        p += k + (p[k] == ',');
    }
    return 0;
}

static void add(struct kn_child_contact *out, size_t *n, size_t max,
                size_t guardian, const char *ch, const char *sealed,
                const char *index)
{
    if (*n >= max || sealed == NULL || index == NULL ||
        strlen(ch) + 1 + strlen(index) >= KN_CHILD_FIELD_MAX)
        return;
    out[*n].guardian = guardian;
    out[*n].channel = ch;
    out[*n].sealed = sealed;
    snprintf(out[*n].field, KN_CHILD_FIELD_MAX, "%s:%s", ch, index);
    (*n)++;
}

size_t kn_child_contacts(json_t *c, const char *channels,
                         struct kn_child_contact *out, size_t max)
{
    size_t n = 0;
    int em = on_channel(channels, "email"), li = on_channel(channels, "line"),
        pu = on_channel(channels, "push");
    /* the record, then its further guardians (model/directory.h "g") */
    for (size_t g = 0;; g++) {
        struct kn_dir_rec d;
        json_t *o =
            g == 0
                ? c
                : json_array_get(json_object_get(c, KN_DIR_GUARDIANS), g - 1);
        if (o == NULL || kn_dir_parse(o, &d) < 0)
            break;
        if (em)
            add(out, &n, max, g, "email", d.email, d.email_index);
        if (li && !d.line_dead)
            add(out, &n, max, g, "line", d.line, d.line_index);
        for (size_t i = 0; pu && i < d.npush; i++) {
            if (!d.push[i].dead)
                add(out, &n, max, g, "push", d.push[i].token, d.push[i].index);
        }
        kn_dir_rec_free(&d);
    }
    return n;
}

char *kn_child_mask_phone(const char *plain)
{
    size_t n = strlen(plain), digits = 0, i = n;
    while (i > 0 && digits < 4) {
        i--;
        if (plain[i] >= '0' && plain[i] <= '9')
            digits++;
    }
    return kn_xasprintf("***%s", plain + i);
}
