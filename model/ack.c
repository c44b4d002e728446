/*
 * ack.c - an "ack" broadcast's personal confirmation links (a token that
 * names the broadcast, the child and, with escalation, the guardian,
 * signed with a blind index of the keyring) and the stored form of a
 * confirmation with its answer and comment (model/broadcast.h).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "common/seal.h"
#include "common/signed.h"
#include "common/utf8.h"
#include "model/broadcast.h"

/* ---- personal confirmation links ---- */

char *kn_ack_token(const struct kn_keyring *kr, const char *bcast,
                   const char *rcpt)
{
    return kn_ack_token_guardian(kr, bcast, rcpt, -1);
}

char *kn_ack_token_guardian(const struct kn_keyring *kr, const char *bcast,
                            const char *rcpt, int guardian)
{
    char *plain = guardian >= 0
                      ? kn_xasprintf("%s|%s|%d", bcast, rcpt, guardian)
                      : kn_xasprintf("%s|%s", bcast, rcpt),
         *t = kn_signed_make(kr, "ack", plain);
    free(plain);
    return t;
}

int kn_ack_parse(const struct kn_keyring *kr, const char *token, char **bcast,
                 char **rcpt)
{
    int g;
    return kn_ack_parse_guardian(kr, token, bcast, rcpt, &g);
}

int kn_ack_parse_guardian(const struct kn_keyring *kr, const char *token,
                          char **bcast, char **rcpt, int *guardian)
{
    const char *dot = strchr(token, '.');
    char *plain, *bar, *gbar;
    *bcast = *rcpt = NULL;
    *guardian = -1;
    if (dot != NULL && dot - token > 400)
        return KN_EINVAL;
    plain = kn_signed_open(kr, "ack", token);
    if (plain == NULL)
        return KN_EINVAL;
    bar = strchr(plain, '|');
    if (bar == NULL) {
        free(plain);
        return KN_EINVAL;
    }
    *bar = '\0';
    gbar = strchr(bar + 1, '|'); /* "|<guardian>": 0 to 99 */
    if (gbar != NULL) {
        *gbar = '\0';
        if (gbar[1] < '0' || gbar[1] > '9' ||
            (gbar[2] != '\0' && (gbar[1] == '0' || gbar[2] < '0' ||
                                 gbar[2] > '9' || gbar[3] != '\0'))) {
            free(plain);
            return KN_EINVAL;
        }
        *guardian = atoi(gbar + 1);
    }
    if (!kn_id_valid((char *)plain) || !kn_id_valid(bar + 1)) {
        free(plain);
        *guardian = -1;
        return KN_EINVAL;
    }
    *bcast = kn_xstrdup((char *)plain);
    *rcpt = kn_xstrdup(bar + 1);
    free(plain);
    return 0;
}

/* ---- confirmations and answers ---- */

int kn_ack_comment_check(const char *s, size_t n, char *err, size_t errlen)
{
    long chars = kn_utf8_plain_chars(s, n);
    if (memchr(s, '\0', n) != NULL || chars < 0) {
        snprintf(err, errlen,
                 "the comment holds a line break, a tab or another control "
                 "character; write it on one line");
        return KN_EINVAL;
    }
    if (chars > KN_ACK_COMMENT_MAX) {
        snprintf(err, errlen,
                 "the comment is %ld characters; shorten it to at most %d",
                 chars, KN_ACK_COMMENT_MAX);
        return KN_EINVAL;
    }
    return 0;
}

char *kn_ack_value(int64_t ms, int answer, const char *sealed_comment)
{
    return kn_ack_value_guardian(ms, answer, sealed_comment, -1);
}

char *kn_ack_value_guardian(int64_t ms, int answer, const char *sealed_comment,
                            int guardian)
{
    json_t *o = json_object();
    char *out;
    json_object_set_new(o, "t", json_integer(ms));
    if (answer >= 0)
        json_object_set_new(o, "a", json_integer(answer));
    if (sealed_comment != NULL)
        json_object_set_new(o, "c", json_string(sealed_comment));
    if (guardian >= 0)
        json_object_set_new(o, "g", json_integer(guardian));
    out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return out;
}

int kn_ack_value_guardian_of(const char *v)
{
    json_t *o, *g;
    int out = -1;
    if (v == NULL || v[0] != '{')
        return -1;
    o = json_loads(v, 0, NULL);
    g = json_object_get(o, "g");
    if (json_is_integer(g) && json_integer_value(g) >= 0 &&
        json_integer_value(g) < 100)
        out = (int)json_integer_value(g);
    json_decref(o);
    return out;
}

int kn_ack_value_parse(const char *v, int64_t *ms, int *answer,
                       char **sealed_comment)
{
    json_t *o, *t, *a, *c;
    *ms = 0;
    *answer = -1;
    if (sealed_comment != NULL)
        *sealed_comment = NULL;
    if (v == NULL || v[0] == '\0')
        return KN_EINVAL;
    if (v[0] != '{') { /* a confirmation stored before answers: its time */
        char *end;
        long long x = strtoll(v, &end, 10);
        if (*end != '\0' || x <= 0)
            return KN_EINVAL;
        *ms = x;
        return 0;
    }
    o = json_loads(v, 0, NULL);
    t = json_object_get(o, "t");
    if (!json_is_integer(t) || json_integer_value(t) <= 0) {
        json_decref(o);
        return KN_EINVAL;
    }
    *ms = json_integer_value(t);
    a = json_object_get(o, "a");
    if (json_is_integer(a) && json_integer_value(a) >= 0 &&
        json_integer_value(a) < KN_ACK_CHOICES_MAX)
        *answer = (int)json_integer_value(a);
    c = json_object_get(o, "c");
    if (sealed_comment != NULL && json_is_string(c))
        *sealed_comment = kn_xstrdup(json_string_value(c));
    json_decref(o);
    return 0;
}
