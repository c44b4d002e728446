/*
 * push.h - the app push channel: one adapter, "push" (routes.push = push),
 * over two provider clients chosen per job by the device token's platform:
 * FCM HTTP v1 (fcm.c) and APNs (apns.c).  Both send one notification per
 * request, many requests multiplexed over a few long-lived HTTP/2
 * connections.
 *
 * Everything below kn_push_token_refreshes() is internal to adapters/ and
 * the unit tests: the provider clients, and the pure pieces (payload
 * building and cutting, answer classification, token renewal rules) that
 * tests/unit/test_push.c checks without a network.
 */
#ifndef KN_ADAPTERS_PUSH_H
#define KN_ADAPTERS_PUSH_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "adapters/adapter.h"

/* The key that carries a personal confirmation link: FCM data, and a custom
 * top-level key of the APNs payload (the app opens it on a tap). */
#define KN_PUSH_ACK_KEY "kairan_ack_url"

struct kn_config;

/*
 * Provider credentials obtained since the adapter was opened, the first
 * one included: provider "fcm" counts OAuth2 access tokens fetched from the
 * token endpoint, "apns" counts provider JWTs signed.  0 for an adapter
 * that is not "push", a provider not configured, or another name.
 */
uint64_t kn_push_token_refreshes(const struct kn_adapter *a,
                                 const char *provider);

/* Largest request payload either provider takes (bytes). */
#define KN_PUSH_MAX_PAYLOAD 4096
/*
 * Requests in flight per HTTP/2 connection (the adapter's capacity): below
 * the 100 concurrent streams servers commonly allow, because a server may
 * still count a stream whose answer we already read (Node's does) and
 * refuse one more (REFUSED_STREAM), which libcurl 7.88 answers by
 * abandoning the whole connection.
 */
#define KN_PUSH_STREAMS_PER_CONN 90

/* ---- shared helpers (push.c) ---- */

/*
 * The notification's title, body and link text for a job (model/message.h,
 * KN_TEXT_PUSH): the subject and the body, marked as a drill when the
 * broadcast is one, and for a personal link (job->link) the confirmation
 * words and the link, to follow the body ("" without a link).  Heap
 * strings.
 */
void kn__push_text(const struct kn_job *job, char **title, char **body,
                   char **link);

/* Makes the payload for (title, body); a new reference, or NULL. */
typedef json_t *kn__push_build_cb(void *ctx, const char *title,
                                  const char *body);

/*
 * Serialise build(ctx, title, body + tail) as compact JSON of at most max
 * bytes.  When it is longer, the body is cut at a UTF-8 character boundary
 * with "…" appended, as little as possible, and tail (the confirmation
 * link; may be NULL) kept whole after it; if even an empty body is too
 * long, the title is cut the same way (the body then only tail).  The
 * tail is never cut.  Returns 0 with a heap string in *out (length in
 * *len), KN_ETOOBIG if nothing fits, KN_EINVAL if build fails (invalid
 * UTF-8).
 */
int kn__push_fit(kn__push_build_cb *build, void *ctx, const char *title,
                 const char *body, const char *tail, size_t max, char **out,
                 size_t *len);

/*
 * A Retry-After value (delta seconds or an HTTP date) in milliseconds from
 * now_ms; 0 if absent, unparsable or in the past.  Capped at one day.
 */
int64_t kn__push_retry_after(const char *value, int64_t now_ms);

/*
 * A name-based UUID (version 5, SHA-1, kairan's own namespace) of key as
 * 36 lowercase characters: the same key always gives the same UUID, so a
 * retried job carries the same apns-id.
 */
void kn__push_uuid(const char *key, char out[37]);

/*
 * Copy a provider's text into buf for a result detail or a log line:
 * e-mail addresses masked, the device token (if it appears) replaced by
 * its masked form, control characters dropped; masked before it is cut to
 * len, so that nothing across the cut is left half in clear.  Returns buf.
 */
char *kn__push_scrub(const char *text, const char *token, char *buf,
                     size_t len);

/*
 * A "dead token" answer (r->dead) taken back before the provider has
 * accepted anything from this configuration (it may be the
 * configuration's fault, PROVIDERS.md 3): r->dead cleared, the detail's
 * " (token dead)" replaced by " (not marked dead: " why ")".
 */
struct kn_result;
void kn__push_not_dead(struct kn_result *r, char *detail, size_t n,
                       const char *why);

/* ---- FCM HTTP v1 (fcm.c) ---- */

struct kn__fcm;

/*
 * Open the FCM client from the [fcm] keys: reads the service account file
 * and checks the URLs.  Returns 0 with *out NULL when [fcm] is not
 * configured (neither project_id nor service_account_file set), 0 with a
 * client, or KN_ECONFIG (logged, saying what to fix).
 */
int kn__fcm_open(uv_loop_t *loop, const struct kn_config *cfg,
                 struct kn__fcm **out);
/* Send one job (job->addr is the registration token); one done call. */
void kn__fcm_send(struct kn__fcm *f, struct kn_job *job, kn_done_cb *done,
                  void *arg);
/* Jobs started and not yet done (waiting for a token included). */
size_t kn__fcm_in_flight(const struct kn__fcm *f);
/* Access tokens fetched so far. */
uint64_t kn__fcm_refreshes(const struct kn__fcm *f);
/* Connections this client may open. */
size_t kn__fcm_connections(const struct kn__fcm *f);
/* Abort what is running (done calls with kn_detail_aborted) and free. */
void kn__fcm_close(struct kn__fcm *f);

/*
 * The request body for a job at now_ms:
 *   {"message":{"token", "notification":{"title","body"},
 *    "data":{"bc","kind"[,"kairan_ack_url"]},
 *    "android":{"priority","ttl","collapse_key"},
 *    "apns":{"headers":{"apns-priority","apns-push-type"}}}}
 * at most KN_PUSH_MAX_PAYLOAD bytes (the body cut to fit).  With a personal
 * link (job->link) the link is in data.kairan_ack_url and at the end of
 * the notification body, after the confirmation words; never cut.  Returns 0
 * and a heap string, or KN_EINVAL / KN_ETOOBIG (permanent).
 */
int kn__fcm_payload(const struct kn_job *job, int64_t now_ms, char **out,
                    size_t *len);

/*
 * Classify an FCM answer (status 0 = no HTTP answer) into r, with the
 * reason written to detail (r->detail points there).  Reads
 * error.details[].errorCode, not only the HTTP status.  Returns 1 when the
 * answer says our access token was refused (401 other than
 * THIRD_PARTY_AUTH_ERROR): the caller renews the token and retries once;
 * r then holds what to report if it may not.  Otherwise 0.
 */
int kn__fcm_classify(long status, const char *body, const char *retry_after,
                     const char *token, int64_t now_ms, struct kn_result *r,
                     char *detail, size_t dlen);

/*
 * When to renew an access token that expires at expires_ms and was issued
 * for lifetime_ms: 0 = use it; 1 = use it but fetch a new one now (within
 * the margin before expiry: min(5 minutes, a quarter of the lifetime));
 * 2 = expired (or none): wait for a new one.
 */
int kn__fcm_token_state(int64_t expires_ms, int64_t lifetime_ms,
                        int64_t now_ms);

/* ---- APNs (apns.c) ---- */

struct kn__apns;

/* As kn__fcm_open, for [apns] (key_file, key_id, team_id, topic); host
 * (may be NULL) shares the provider token with the other processes. */
int kn__apns_open(uv_loop_t *loop, const struct kn_config *cfg,
                  const struct kn_adapter_host *host, struct kn__apns **out);
void kn__apns_send(struct kn__apns *p, struct kn_job *job, kn_done_cb *done,
                   void *arg);
size_t kn__apns_in_flight(const struct kn__apns *p);
/* Provider tokens (JWTs) this process signed and used so far. */
uint64_t kn__apns_refreshes(const struct kn__apns *p);
size_t kn__apns_connections(const struct kn__apns *p);
void kn__apns_close(struct kn__apns *p);

/*
 * The APNs body for a job, at most KN_PUSH_MAX_PAYLOAD bytes:
 *   {"aps":{"alert":{"title","body"}[,"sound"]}, "bc"[,"kairan_ack_url"]}
 * With a personal link (job->link) the link is in the custom key
 * kairan_ack_url beside "aps" and at the end of the alert body, after the
 * confirmation words; never cut.
 */
int kn__apns_payload(const struct kn_job *job, char **out, size_t *len);

/*
 * apns-collapse-id for a broadcast: the id itself when it has at most 64
 * bytes, else the 64 hex digits of its SHA-256.
 */
void kn__apns_collapse_id(const char *bcast, char out[65]);

/*
 * Classify an APNs answer as kn__fcm_classify does (apns_id: the apns-id
 * response header, may be NULL; token: the device token, scrubbed from
 * the detail).  Returns KN__APNS_EXPIRED for 403 ExpiredProviderToken,
 * KN__APNS_INVALID for 403 InvalidProviderToken (r->auth set too): the
 * caller may replace the provider token (kn__apns_token_refused); else 0.
 */
#define KN__APNS_EXPIRED 1
#define KN__APNS_INVALID 2
int kn__apns_classify(long status, const char *body, const char *retry_after,
                      const char *apns_id, const char *token, int64_t now_ms,
                      struct kn_result *r, char *detail, size_t dlen);

/* ---- APNs' provider token (apns_token.c) ---- */

/* Apple's rules for provider tokens (milliseconds). */
#define KN_APNS_JWT_MIN_AGE_MS   (20 * 60 * 1000LL) /* never renew sooner */
#define KN_APNS_JWT_RENEW_MIN_MS (40 * 60 * 1000LL) /* renew from 40 to */
#define KN_APNS_JWT_RENEW_MAX_MS (50 * 60 * 1000LL) /* 50 min, at random */

enum { KN__APNS_KEEP, KN__APNS_RENEW, KN__APNS_RENEW_EARLY };

/*
 * Should a provider token issued at iat_ms (0: none yet) be replaced at
 * now_ms?  KN__APNS_RENEW when there is none, it is renew_ms old or older,
 * or dated more than a minute in the future (the clock went back), or APNs
 * refused it (refused: 403 ExpiredProviderToken or InvalidProviderToken)
 * and it is at least KN_APNS_JWT_MIN_AGE_MS old; KN__APNS_RENEW_EARLY when
 * APNs refused it younger than that and it did not itself replace one
 * early (early); else KN__APNS_KEEP.
 */
int kn__apns_renew_due(int64_t iat_ms, int64_t now_ms, int64_t renew_ms,
                       int refused, int early);

/*
 * 1 if jwt is a provider token of this key (its ES256 signature verifies
 * with key), key id and team, issued at iat_ms; else 0.  A token adopted
 * from the store is checked so.
 */
int kn__apns_jwt_check(EVP_PKEY *key, const char *key_id, const char *team_id,
                       const char *jwt, int64_t iat_ms);

/* The token of one APNs client (apns_token.c says how it is shared). */
struct kn__apns_token;
/* Called when sends that waited for a token may go (or fail). */
typedef void kn__apns_token_cb(void *arg);

/*
 * A token keeper for (key, key_id, team_id); key is referenced, not
 * copied.  With a host (its cred_get and cred_offer set) the token is
 * shared through it and a timer on loop reads it again every check_ms
 * (0: a minute) plus up to a quarter of that at random; ready(arg) is
 * called when a token becomes available after kn__apns_token_get answered
 * KN_EAGAIN.
 */
struct kn__apns_token *
kn__apns_token_new(uv_loop_t *loop, EVP_PKEY *key, const char *key_id,
                   const char *team_id, const struct kn_adapter_host *host,
                   int64_t check_ms, kn__apns_token_cb *ready, void *arg);

/*
 * The header line to send with ("authorization: bearer <JWT>", valid until
 * the next call into the keeper) and its number in *gen.  Returns 0;
 * KN_EAGAIN when the first token is being fetched (wait for ready); or
 * KN_ECRYPTO when none could be signed.
 */
int kn__apns_token_get(struct kn__apns_token *t, const char **header,
                       uint64_t *gen);

/*
 * APNs refused the token number gen (403 ExpiredProviderToken or
 * InvalidProviderToken): replace it if the rules allow (once, shared);
 * what was done is appended to detail (n bytes in all).
 */
void kn__apns_token_refused(struct kn__apns_token *t, uint64_t gen,
                            char *detail, size_t n);

/* Tokens this process signed and used. */
uint64_t kn__apns_token_signed(const struct kn__apns_token *t);

/* Stop (a store call in flight is dropped when it answers) and free (after
 * the timer's close callback, when there is one). */
void kn__apns_token_close(struct kn__apns_token *t);

#endif
