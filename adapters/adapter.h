/*
 * adapter.h - the one interface every delivery provider implements
 * (DESIGN.md "The adapter interface").
 *
 * An adapter sends; it never decides.  It classifies the provider's answer
 * into delivered, tempfail (retry) or permfail (give up) with a detail
 * string that carries the provider's code and text and never a plaintext
 * address.  The dispatcher alone decides about retries, fallback and
 * failover.  send() never blocks: everything runs on the one uv loop, and
 * every job handed to send() gets exactly one done call, possibly before
 * send() returns.
 */
#ifndef KN_ADAPTERS_ADAPTER_H
#define KN_ADAPTERS_ADAPTER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct kn_config;
struct kn_keyring;

enum kn_status { KN_DELIVERED, KN_TEMPFAIL, KN_PERMFAIL };

/* Text for a status: "delivered", "tempfail", "permfail". */
const char *kn_status_name(enum kn_status s);

struct kn_result {
    enum kn_status status;
    int64_t retry_after_ms; /* > 0: the provider asked us to wait so long */
    const char *detail;     /* provider code + text; masked; may be NULL */
    /* Hints for the dispatcher (it alone decides what to do): */
    unsigned dead : 1;  /* the address is gone (token unregistered, user
                           blocked): mark it dead, never retry it */
    unsigned auth : 1;  /* our credentials were refused (401/403): not the
                           recipient's fault; pause the route, keep job */
    unsigned quota : 1; /* the provider's quota is used up (LINE monthly):
                           stop the route, move recipients on */
    /* e-mail: the relay refused the recipient with 5xx at RCPT: a bounce
     * (issue 18) */
    unsigned refused : 1;
};

/* What is sent: shared by every job of one broadcast (read-only). */
struct kn_message {
    char *bcast;    /* broadcast id */
    char *tenant;   /* tenant id */
    char *category; /* emergency, notice, ... */
    char *subject;  /* UTF-8, checked */
    char *body;     /* UTF-8, checked */
    int urgent;     /* priority urgent */
    int drill;      /* a drill */
    int ack;        /* recipients confirm through a personal link */
    int emergency;  /* of an emergency category, or not known to be
                       otherwise ("emg" not "0"): no List-Unsubscribe */
    int64_t created_ms;
    int64_t expires_ms;
    /* The language of subject and body: a translation's tag ("en"), or
     * NULL for the main, Japanese text (issue 16). */
    const char *lang;
};

/* One delivery job as an adapter sees it. */
struct kn_job {
    const struct kn_message *msg;
    const char *channel;  /* "email", "line", "push" */
    const char *rcpt;     /* recipient id (not an address) */
    const char *bindex;   /* blind index of the address */
    const char *addr;     /* plaintext address, decrypted just before send */
    int attempt;          /* 1 for the first try */
    const char *platform; /* push: "fcm" or "apns"; else NULL */
    /* A batch job (LINE multicast: up to 500 user ids in one request) has
     * naddr > 1 and every address in addrs (addr == addrs[0]).  One
     * result covers the whole job. */
    size_t naddr;
    const char *const *addrs;
    const char *key;  /* stable per (broadcast, job) across retries: LINE
                         X-Line-Retry-Key is derived from it */
    int64_t first_ms; /* when the job was first enqueued */
    const char *link; /* personal confirmation link (ack broadcasts) or
                         NULL: every channel's text must carry it */
    /* the guardian's "my page" link at the foot (issue 16,
     * kn_message_mypage_text), or NULL: e-mail the personal one, LINE the
     * generic <public_url>/m; push none */
    const char *mypage;
    void *_owner; /* the worker's record of this job */
    /* e-mail: the VERP reference (model/dsn.h) for the envelope sender and
     * SendGrid's custom_args, or NULL (issue 18) */
    const char *bounce_ref;
    /* e-mail: the one-click unsubscribe URL (RFC 8058, issue 16) for
     * List-Unsubscribe, or NULL (urgent, emergency, no https public_url) */
    const char *unsub;
};

typedef void kn_done_cb(struct kn_job *job, const struct kn_result *r,
                        void *arg);

struct kn_adapter;

/*
 * A rate bucket a provider's sends spend from: a token bucket shared by
 * every kairand through Redis (key rate:<name>).  name is also the bucket
 * label of /metrics.
 */
struct kn_rate_def {
    const char *name; /* "line:multicast", "push:fcm", "sendgrid" ... */
    /* Sends per second, all processes together, from the config. */
    int64_t (*per_second)(const struct kn_config *cfg);
};

struct kn_adapter_ops {
    const char *name; /* "smtp", "outbox", ... */
    size_t max_batch; /* jobs per send() call: LINE 500, others 1 */
    /* Allocate private state into a->priv; log and return < 0 on error. */
    int (*open)(struct kn_adapter *a, const struct kn_config *cfg);
    /* Start sending n jobs; each gets one done call. */
    int (*send)(struct kn_adapter *a, struct kn_job **jobs, size_t n,
                kn_done_cb *done, void *arg);
    /* Sends started and not finished (for drain). */
    size_t (*in_flight)(struct kn_adapter *a);
    /* Most sends this adapter wants at once (the worker's slots). */
    size_t (*capacity)(struct kn_adapter *a);
    /* Abort what is running (done calls with tempfail) and free. */
    void (*close)(struct kn_adapter *a);

    /* What the dispatcher knows of a provider comes from here (every
     * field below may be left out: NULL / 0). */

    /* The provider's rate buckets (nrates of them), and which one a job
     * spends from: an index into rates, or -1 for none (rate_for NULL:
     * the first, if any).  Called before the address is decrypted: only
     * job->naddr and job->platform are set. */
    const struct kn_rate_def *rates;
    size_t nrates;
    int (*rate_for)(const struct kn_job *job);
    /* Add the provider access tokens obtained (issued) and the token
     * requests that failed since open to *issued and *failed. */
    void (*tokens)(const struct kn_adapter *a, uint64_t *issued,
                   uint64_t *failed);
    /* The provider this one fails over to while it is down (breaker
     * open), or NULL: "sendgrid" for the relay. */
    const char *failover;
    /* 1 if the config sets the provider up (credentials present), so that
     * it may serve as a failover (NULL: always). */
    int (*configured)(const struct kn_config *cfg);
    /* 1 if the provider takes this address (NULL: every address). */
    int (*accepts)(const char *addr);
    /* Answer an incoming message (LINE's Reply API: its reply token) with
     * one text: fire and forget on the loop, a failure is logged (never
     * the token or the text).  0 if started; NULL: the provider has none. */
    int (*reply)(struct kn_adapter *a, const char *reply_token,
                 const char *text);
};

/* ---- what the dispatcher offers adapters (the host) ---- */

/*
 * A credential shared by every kairand process (a provider token that the
 * provider wants one of, not one per process: APNs' JWT).  The dispatcher
 * keeps it, sealed, in Redis (dispatcher/cred.c, model/cred.h), so that an
 * adapter needs no Redis of its own.
 */
struct kn_shared_cred {
    const char *value; /* the credential; NULL: none stored */
    int64_t iat_ms;    /* when it was issued */
    uint64_t gen;      /* its generation in the store; 0: none stored */
    int early;         /* it replaced one younger than the provider's
                          floor, after the provider refused that one */
    int64_t ttl_ms;    /* offer only: how long the store keeps it */
};

/*
 * The answer of a cred_get or cred_offer.  rc 0: c is what is stored now
 * (c->value NULL: nothing), valid only during the call.  rc < 0: the store
 * could not be used (Redis unreachable or refusing, a record that does not
 * open with this key file); c is NULL.
 */
typedef void kn_shared_cred_cb(int rc, const struct kn_shared_cred *c,
                               void *arg);

struct kn_adapter_host {
    void *ctx; /* the dispatcher's, passed back to every call */
    /*
     * Read the credential (provider, account): "apns", "<team>.<kid>...".
     * Returns 0 (cb runs exactly once, never before this returns) or a
     * negative KN_E* code (not started: Redis not connected; cb never
     * runs).
     */
    int (*cred_get)(void *ctx, const char *provider, const char *account,
                    kn_shared_cred_cb *cb, void *arg);
    /*
     * Store c->value, c->iat_ms and c->early for c->ttl_ms as the
     * credential, only if the stored generation is still c->gen (or
     * nothing is stored): a compare-and-set, so that of several processes
     * replacing it at once exactly one does.  cb gets what is stored
     * afterwards: this value (generation c->gen + 1 or 1) or the one that
     * won, to adopt.  Same returns as cred_get.
     */
    int (*cred_offer)(void *ctx, const char *provider, const char *account,
                      const struct kn_shared_cred *c, kn_shared_cred_cb *cb,
                      void *arg);
};

struct kn_adapter {
    const struct kn_adapter_ops *ops;
    uv_loop_t *loop;
    /* What the dispatcher offers (borrowed; outlives the adapter), or
     * NULL (tests, tools): an adapter then keeps everything to itself. */
    const struct kn_adapter_host *host;
    void *priv;
};

/*
 * Find the ops for a name ("smtp", "outbox"), or NULL.  Adding a provider
 * is one file in adapters/ and one row in the table in adapter.c.
 */
const struct kn_adapter_ops *kn_adapter_find(const char *name);

/* The bucket (index into a->ops->rates) job spends from, or -1. */
int kn_adapter_rate_for(const struct kn_adapter *a, const struct kn_job *job);

/* Add a's provider tokens issued / failed to *issued / *failed. */
void kn_adapter_tokens(const struct kn_adapter *a, uint64_t *issued,
                       uint64_t *failed);

/* 1 if a (an opened adapter) takes addr. */
int kn_adapter_accepts(const struct kn_adapter *a, const char *addr);

/* Open an adapter by name into a, with the dispatcher's host (may be
 * NULL; borrowed, it must outlive the adapter).  Returns 0 or a negative
 * KN_E* code. */
int kn_adapter_open(struct kn_adapter *a, const char *name, uv_loop_t *loop,
                    const struct kn_config *cfg,
                    const struct kn_adapter_host *host);

extern const struct kn_adapter_ops kn_adapter_outbox;
extern const struct kn_adapter_ops kn_adapter_smtp;
extern const struct kn_adapter_ops kn_adapter_push;
extern const struct kn_adapter_ops kn_adapter_line;
extern const struct kn_adapter_ops kn_adapter_sendgrid;

/* Fixed details, compared by pointer by callers. */
extern const char kn_detail_aborted[]; /* "aborted: shutting down" */

/* ---- shared by the mail adapters (smtp, outbox, sendgrid) ---- */

struct kn_mail_conf {
    char *from;      /* "Name <addr>" */
    char *from_addr; /* addr part */
    char *reply_to;
    char *domain; /* for Message-ID */
};

/* Fill mc from the [smtp] keys.  Returns 0 or KN_ECONFIG (logged). */
int kn__mail_conf_init(struct kn_mail_conf *mc, const struct kn_config *cfg);
void kn__mail_conf_free(struct kn_mail_conf *mc);

/*
 * The whole RFC 5322 message for one job (drill prefix and line added).
 * Returns 0 and a heap buffer, or KN_EINVAL (bad field: permanent).
 */
int kn__mail_build(const struct kn_mail_conf *mc, const struct kn_job *job,
                   char **out, size_t *len);

/* ---- what a channel would deliver, for a preview (preview.c) ---- */

/* An e-mail as a mail client shows it: the decoded headers and text. */
struct kn_preview_mail {
    char *from, *to, *subject, *date, *body; /* heap, UTF-8 */
    int urgent;                              /* Priority/Importance set */
    size_t bytes;                            /* the whole message's size */
};

/*
 * Build job's e-mail with the mail adapters' own code (kn__mail_build,
 * from the [smtp] keys) and read it back as a mail client shows it.
 * Returns 0 and fills out (free with kn_preview_mail_free), or a negative
 * KN_E* code (KN_ECONFIG: smtp.from is not a mailbox).
 */
int kn_preview_mail(const struct kn_config *cfg, const struct kn_job *job,
                    struct kn_preview_mail *out);
void kn_preview_mail_free(struct kn_preview_mail *m);

/*
 * The push notification of job on platform "fcm" or "apns" as the adapter
 * would send it (the payload cut to its 4,096 bytes): heap title and body
 * and the payload's size.  Returns 0 or a negative KN_E* code.
 */
int kn_preview_push(const struct kn_job *job, const char *platform,
                    char **title, char **body, size_t *bytes);

#endif
