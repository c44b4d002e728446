/*
 * line_event.c - what LINE's webhook tells kairan (line_event.h): the
 * signature check and the follow/unfollow events of a body.  No I/O: the
 * HTTP route (dispatcher/http/line_webhook.c) calls these.
 */
#include "model/line_event.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "common/codec.h"
#include "common/kn.h"
#include "common/seal.h"
#include "model/address.h"

int kn_line_webhook_verify(const char *secret, const char *body, size_t len,
                           const char *signature_b64)
{
    unsigned char mac[32];
    char *want;
    size_t sl;
    int ok;

    if (secret == NULL || secret[0] == '\0' || signature_b64 == NULL ||
        body == NULL)
        return 0;
    sl = strlen(signature_b64);
    while (sl > 0 &&
           (signature_b64[sl - 1] == ' ' || signature_b64[sl - 1] == '\t'))
        sl--;
    if (sl != 44) /* base64 of 32 bytes */
        return 0;
    kn_hmac_sha256(secret, strlen(secret), body, len, mac);
    want = kn_b64_encode(mac, sizeof(mac));
    ok = CRYPTO_memcmp(want, signature_b64, 44) == 0;
    free(want);
    OPENSSL_cleanse(mac, sizeof(mac));
    return ok;
}

int kn_line_webhook_events(const char *body, size_t len,
                           void (*cb)(const char *type, const char *user_id,
                                      int unblocked, int64_t timestamp_ms,
                                      void *arg),
                           void *arg)
{
    json_t *j = json_loadb(body, len, 0, NULL), *events;
    int n = 0;

    events = json_object_get(j, "events");
    if (!json_is_object(j) || !json_is_array(events)) {
        json_decref(j);
        return KN_EINVAL;
    }
    for (size_t i = 0; i < json_array_size(events); i++) {
        json_t *ev = json_array_get(events, i);
        json_t *src = json_object_get(ev, "source");
        const char *type = json_string_value(json_object_get(ev, "type"));
        const char *stype = json_string_value(json_object_get(src, "type"));
        const char *uid = json_string_value(json_object_get(src, "userId"));
        json_t *ts = json_object_get(ev, "timestamp");
        int unblocked;
        if (type == NULL ||
            (strcmp(type, "follow") != 0 && strcmp(type, "unfollow") != 0) ||
            stype == NULL || strcmp(stype, "user") != 0 ||
            kn_addr_line_check(uid, NULL) != 0)
            continue;
        unblocked = strcmp(type, "follow") == 0 &&
                    json_is_true(json_object_get(json_object_get(ev, "follow"),
                                                 "isUnblocked"));
        cb(type, uid, unblocked,
           json_is_integer(ts) && json_integer_value(ts) > 0
               ? (int64_t)json_integer_value(ts)
               : 0,
           arg);
        n++;
    }
    json_decref(j);
    return n;
}

int kn_line_webhook_messages(const char *body, size_t len,
                             void (*cb)(const char *user_id, const char *text,
                                        const char *reply_token, void *arg),
                             void *arg)
{
    json_t *j = json_loadb(body, len, 0, NULL), *events;
    int n = 0;

    events = json_object_get(j, "events");
    if (!json_is_object(j) || !json_is_array(events)) {
        json_decref(j);
        return KN_EINVAL;
    }
    for (size_t i = 0; i < json_array_size(events); i++) {
        json_t *ev = json_array_get(events, i);
        json_t *src = json_object_get(ev, "source");
        json_t *msg = json_object_get(ev, "message");
        const char *type = json_string_value(json_object_get(ev, "type"));
        const char *stype = json_string_value(json_object_get(src, "type"));
        const char *uid = json_string_value(json_object_get(src, "userId"));
        const char *mtype = json_string_value(json_object_get(msg, "type"));
        const char *text = json_string_value(json_object_get(msg, "text"));
        const char *rt = json_string_value(json_object_get(ev, "replyToken"));
        json_t *dc = json_object_get(ev, "deliveryContext");
        if (type == NULL || strcmp(type, "message") != 0 || stype == NULL ||
            strcmp(stype, "user") != 0 || kn_addr_line_check(uid, NULL) != 0 ||
            mtype == NULL || strcmp(mtype, "text") != 0 || text == NULL ||
            json_is_true(json_object_get(dc, "isRedelivery")))
            continue;
        if (rt != NULL && (rt[0] == '\0' || strlen(rt) > 256))
            rt = NULL;
        cb(uid, text, rt, arg);
        n++;
    }
    json_decref(j);
    return n;
}

int kn_line_link_code(const char *text, char *out, size_t outlen)
{
    size_t n = 0;
    const unsigned char *p = (const unsigned char *)text;
    while (*p != '\0') {
        int d = -1;
        if (*p >= '0' && *p <= '9') {
            d = *p - '0';
            p++;
        } else if (p[0] == 0xEF && p[1] == 0xBC && p[2] >= 0x90 &&
                   p[2] <= 0x99) { /* U+FF10..FF19, full-width digits */
            d = p[2] - 0x90;
            p += 3;
        } else if (*p == ' ' || *p == '-' || *p == '\t' || *p == '\n' ||
                   *p == '\r') {
            p++;
            continue;
        } else if (p[0] == 0xE3 && p[1] == 0x80 && p[2] == 0x80) {
            p += 3; /* U+3000, the ideographic space */
            continue;
        } else {
            return -1;
        }
        if (n + 1 >= outlen)
            return -1;
        out[n++] = (char)('0' + d);
    }
    if (n != KN_LINE_CODE_DIGITS)
        return -1;
    out[n] = '\0';
    return 0;
}
