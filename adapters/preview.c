/*
 * preview.c - what a channel would deliver, for the console's preview
 * (POST /v1/broadcasts/preview): the e-mail built by the mail adapters'
 * own kn__mail_build and read back as a mail client shows it, and the
 * push notification as the FCM and APNs adapters cut it into their 4,096
 * bytes.  Nothing is sent; no address is needed beyond the one the caller
 * puts into the job.  (LINE's texts come from model/message.h, the same
 * function the LINE adapter calls.)
 */
#include "adapters/adapter.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adapters/mime.h"
#include "adapters/push.h"
#include "common/buf.h"
#include "common/codec.h"
#include "common/kn.h"

void kn_preview_mail_free(struct kn_preview_mail *m)
{
    free(m->from);
    free(m->to);
    free(m->subject);
    free(m->date);
    free(m->body);
    memset(m, 0, sizeof(*m));
}

/* The value of header name in the head [h, end), unfolded and decoded
 * (RFC 2047); heap, or NULL when absent. */
static char *header_value(const char *h, const char *end, const char *name)
{
    size_t n = strlen(name);
    const char *p = h;
    while (p < end) {
        const char *eol = strstr(p, "\r\n");
        if (eol == NULL || eol > end)
            eol = end;
        if ((size_t)(eol - p) > n + 1 && strncasecmp(p, name, n) == 0 &&
            p[n] == ':') {
            /* The value runs on over folded lines (CRLF + SP or HT). */
            struct kn_buf v;
            const char *q = p + n + 1;
            char *out = NULL;
            kn_buf_init(&v, 1 << 20);
            for (;;) {
                const char *e = strstr(q, "\r\n");
                if (e == NULL || e > end)
                    e = end;
                kn_buf_addn(&v, q, (size_t)(e - q));
                if (e + 2 < end && (e[2] == ' ' || e[2] == '\t')) {
                    q = e + 2;
                    continue;
                }
                break;
            }
            {
                const char *s = kn_buf_str(&v);
                while (*s == ' ' || *s == '\t')
                    s++;
                if (kn_mime_header_decode(s, &out) < 0)
                    out = kn_xstrdup(s);
            }
            kn_buf_free(&v);
            return out;
        }
        p = eol + 2;
    }
    return NULL;
}

int kn_preview_mail(const struct kn_config *cfg, const struct kn_job *job,
                    struct kn_preview_mail *out)
{
    struct kn_mail_conf mc;
    char *raw = NULL, *sep;
    unsigned char *body = NULL;
    size_t len = 0;
    long blen;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = kn__mail_conf_init(&mc, cfg)) < 0)
        return rc;
    rc = kn__mail_build(&mc, job, &raw, &len);
    kn__mail_conf_free(&mc);
    if (rc < 0)
        return rc;
    sep = strstr(raw, "\r\n\r\n");
    if (sep == NULL) {
        free(raw);
        return KN_EINVAL;
    }
    out->from = header_value(raw, sep + 2, "From");
    out->to = header_value(raw, sep + 2, "To");
    out->subject = header_value(raw, sep + 2, "Subject");
    out->date = header_value(raw, sep + 2, "Date");
    {
        char *pr = header_value(raw, sep + 2, "Importance");
        out->urgent = pr != NULL;
        free(pr);
    }
    /* The text part is UTF-8 in base64 (mime.h); CRLF shown as LF. */
    blen = kn_b64_decode(sep + 4, strlen(sep + 4), &body);
    if (blen < 0) {
        free(raw);
        kn_preview_mail_free(out);
        return KN_EINVAL;
    }
    {
        char *w = (char *)body;
        for (long i = 0; i < blen; i++) {
            if (body[i] == '\r' && i + 1 < blen && body[i + 1] == '\n')
                continue;
            *w++ = (char)body[i];
        }
        *w = '\0';
    }
    out->body = (char *)body;
    out->bytes = len;
    free(raw);
    return 0;
}

int kn_preview_push(const struct kn_job *job, const char *platform,
                    char **title, char **body, size_t *bytes)
{
    char *payload = NULL;
    size_t len = 0;
    json_t *root, *n;
    int rc;

    *title = *body = NULL;
    if (strcmp(platform, "apns") == 0)
        rc = kn__apns_payload(job, &payload, &len);
    else
        rc = kn__fcm_payload(job, kn_now_ms(), &payload, &len);
    if (rc < 0)
        return rc;
    root = json_loadb(payload, len, 0, NULL);
    free(payload);
    if (strcmp(platform, "apns") == 0)
        n = json_object_get(json_object_get(root, "aps"), "alert");
    else
        n = json_object_get(json_object_get(root, "message"), "notification");
    if (!json_is_string(json_object_get(n, "title")) ||
        !json_is_string(json_object_get(n, "body"))) {
        json_decref(root);
        return KN_EINVAL;
    }
    *title = kn_xstrdup(json_string_value(json_object_get(n, "title")));
    *body = kn_xstrdup(json_string_value(json_object_get(n, "body")));
    *bytes = len;
    json_decref(root);
    return 0;
}
