/*
 * sendgrid.h - internals of the SendGrid adapter (sendgrid.c) that the
 * unit tests drive: building the v3 Mail Send body for a batch of jobs and
 * classifying the answer.  The adapter itself is kn_adapter_sendgrid
 * (adapter.h).
 */
#ifndef KN_ADAPTERS_SENDGRID_H
#define KN_ADAPTERS_SENDGRID_H

#include <stddef.h>
#include <stdint.h>

/* Only declared here: adapter.h's mail section sits outside its include
 * guard, so this header must not include it a second time. */
struct kn_config;
struct kn_job;
struct kn_result;
struct kn_http_resp;

/* SendGrid's limit: personalizations (and recipients) per request. */
#define KN_SENDGRID_MAX_BATCH 1000
/* Requests in flight at once; more wait in the adapter. */
#define KN_SENDGRID_REQUESTS 4

/* Sender fields, from [smtp] from and reply_to. */
struct kn__sendgrid_from {
    char *email, *name;             /* name may be NULL */
    char *reply_email, *reply_name; /* both NULL without smtp.reply_to */
    char *domain;                   /* of the Message-ID, as SMTP uses */
};

/*
 * Fill f from cfg->smtp_from / smtp_reply_to.  Returns 0, or KN_ECONFIG
 * (logged) when the From address is not in SendGrid's email format.
 */
int kn__sendgrid_from_init(struct kn__sendgrid_from *f,
                           const struct kn_config *cfg);
void kn__sendgrid_from_free(struct kn__sendgrid_from *f);

/*
 * The request body for n jobs of one broadcast (subject, body and urgency
 * from jobs[0]->msg): one personalization per job, to its address, with
 * the Message-ID SMTP would use (kn_mime_message_id of the broadcast, the
 * first 16 hex digits of the blind index and the From domain) and
 * custom_args kairan_bc / kairan_job.  Drill: subject prefix and first
 * body line as in the mail.  Personal confirmation links (job->link) go in
 * through a substitution per personalization, with the mail's words.
 * Returns a heap string, or NULL if a field is not valid UTF-8.
 */
char *kn__sendgrid_body(const struct kn__sendgrid_from *f,
                        struct kn_job *const *jobs, size_t n);

/*
 * Classify the answer to one request (the result of every job in it) into
 * r, with the detail written into detail[0..len) (masked).  now_ms: the
 * wall clock, for X-RateLimit-Reset.
 */
void kn__sendgrid_classify(const struct kn_http_resp *resp, int64_t now_ms,
                           struct kn_result *r, char *detail, size_t len);

/* Fixed detail of a carrier address SendGrid refuses (compare by pointer). */
extern const char kn_detail_sendgrid_address[];

#endif
