/*
 * line_event.c - what LINE's webhook tells kairan (line_event.h): the
 * signature check and the follow/unfollow events of a body.  No I/O: the
 * HTTP route (dispatcher/http/line_webhook.c) calls these.
 */
#include "model/line_event.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

#include "common/kn.h"
#include "common/seal.h"
#include "model/address.h"

int kn_line_webhook_verify(const char *secret, const char *body, size_t len,
                           const char *signature_b64)
{
    unsigned char mac[32];
    char want[48];
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
    EVP_EncodeBlock((unsigned char *)want, mac, (int)sizeof(mac));
    ok = CRYPTO_memcmp(want, signature_b64, 44) == 0;
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
