/*
 * adapter.c - the table of providers and what all adapters share.
 */
#include "adapter.h"

#include <string.h>

#include "common/kn.h"

const char kn_detail_aborted[] = "aborted: shutting down";

static const struct kn_adapter_ops *const adapters[] = {
    &kn_adapter_outbox, &kn_adapter_smtp,     &kn_adapter_push,
    &kn_adapter_line,   &kn_adapter_sendgrid,
};

const char *kn_status_name(enum kn_status s)
{
    switch (s) {
    case KN_DELIVERED:
        return "delivered";
    case KN_TEMPFAIL:
        return "tempfail";
    case KN_PERMFAIL:
        return "permfail";
    }
    return "unknown";
}

const struct kn_adapter_ops *kn_adapter_find(const char *name)
{
    for (size_t i = 0; i < KN_ARRAY_SIZE(adapters); i++) {
        if (strcmp(adapters[i]->name, name) == 0)
            return adapters[i];
    }
    return NULL;
}

int kn_adapter_rate_for(const struct kn_adapter *a, const struct kn_job *job)
{
    int i;
    if (a->ops->nrates == 0)
        return -1;
    if (a->ops->rate_for == NULL)
        return 0;
    i = a->ops->rate_for(job);
    return i >= 0 && (size_t)i < a->ops->nrates ? i : -1;
}

void kn_adapter_tokens(const struct kn_adapter *a, uint64_t *issued,
                       uint64_t *failed)
{
    if (a->ops->tokens != NULL)
        a->ops->tokens(a, issued, failed);
}

int kn_adapter_accepts(const struct kn_adapter *a, const char *addr)
{
    return a->ops->accepts == NULL || a->ops->accepts(addr);
}

int kn_adapter_open(struct kn_adapter *a, const char *name, uv_loop_t *loop,
                    const struct kn_config *cfg,
                    const struct kn_adapter_host *host)
{
    const struct kn_adapter_ops *ops = kn_adapter_find(name);
    if (ops == NULL)
        return KN_ENOENT;
    memset(a, 0, sizeof(*a));
    a->ops = ops;
    a->loop = loop;
    a->host = host;
    return ops->open(a, cfg);
}

/* ---- mail building shared by smtp, outbox (and later sendgrid) ---- */

#include <stdio.h>
#include <stdlib.h>

#include "adapters/mime.h"
#include "model/directory.h"
#include "model/message.h"
#include "common/log.h"
#include "config/config.h"

int kn__mail_conf_init(struct kn_mail_conf *mc, const struct kn_config *cfg)
{
    char *name = NULL, *addr = NULL;
    const char *at;
    memset(mc, 0, sizeof(*mc));
    if (kn_mime_split_mailbox(cfg->smtp_from, &name, &addr) < 0 ||
        (at = strrchr(addr, '@')) == NULL) {
        kn_log(KN_LOG_ERROR, "mail", "smtp.from is not a mailbox", "hint",
               "write it as 'Name <noreply@school.example.jp>'", NULL);
        free(name);
        free(addr);
        return KN_ECONFIG;
    }
    mc->from = kn_xstrdup(cfg->smtp_from);
    mc->from_addr = addr;
    mc->domain = kn_xstrdup(at + 1);
    mc->reply_to = cfg->smtp_reply_to ? kn_xstrdup(cfg->smtp_reply_to) : NULL;
    free(name);
    return 0;
}

void kn__mail_conf_free(struct kn_mail_conf *mc)
{
    free(mc->from);
    free(mc->from_addr);
    free(mc->reply_to);
    free(mc->domain);
    memset(mc, 0, sizeof(*mc));
}

int kn__mail_build(const struct kn_mail_conf *mc, const struct kn_job *job,
                   char **out, size_t *len)
{
    struct kn_mime_msg m;
    char *subject, *body, *link, *mid;
    int rc;

    /* 16 hex digits (64 bits) of the blind index are unique enough within
     * one broadcast and keep the Message-ID line under 78 columns. */
    char bi16[17];
    snprintf(bi16, sizeof(bi16), "%.16s", job->bindex);
    mid = kn_mime_message_id(job->msg->bcast, bi16, mc->domain);
    /* A drill must never be mistaken for the real thing; the link goes
     * after the whole body (a mail is never cut). */
    subject = kn_message_subject(job->msg->drill, job->msg->subject);
    body = kn_message_body(KN_TEXT_MAIL, job->msg->drill, job->msg->body);
    link = kn_message_link_text(KN_TEXT_MAIL, job->link);
    if (link[0] != '\0') {
        char *b = kn_message_body_with_link(body, SIZE_MAX, link);
        free(body);
        body = b;
    }
    free(link);
    if (job->mypage != NULL) {
        char *foot = kn_message_mypage_text(
            job->msg->lang ? job->msg->lang : KN_LANG_DEFAULT, job->mypage);
        char *b = kn_xasprintf("%s%s", body, foot);
        free(foot);
        free(body);
        body = b;
    }
    memset(&m, 0, sizeof(m));
    m.from = mc->from;
    m.reply_to = mc->reply_to;
    m.to = job->addr;
    m.subject = subject;
    m.body = body;
    m.message_id = mid;
    m.date_ms = kn_now_ms();
    m.urgent = job->msg->urgent;
    /* A URL that cannot go into List-Unsubscribe's brackets (an
     * http.public_url written "HTTPS://" or with ',' or '"' in its path
     * passes the config check): the mail goes without the header, as the
     * SendGrid path sends it, rather than failing for every guardian. */
    m.unsub = job->unsub != NULL && kn_mime_unsub_url_ok(job->unsub)
                  ? job->unsub
                  : NULL;
    m.lang = job->msg->lang != NULL ? job->msg->lang : KN_LANG_DEFAULT;
    rc = kn_mime_build(&m, out, len);
    free(subject);
    free(body);
    free(mid);
    return rc;
}
