/*
 * line.h - what the LINE adapter (line.c) offers besides its kn_adapter_ops:
 * counters the dispatcher can show, the webhook helpers (X-Line-Signature
 * check, follow/unfollow events) for POST /line/webhook, and the pure
 * functions the unit tests drive (request building, text cutting, retry
 * key derivation, answer classification).
 */
#ifndef KN_ADAPTERS_LINE_H
#define KN_ADAPTERS_LINE_H

#include <stddef.h>
#include <stdint.h>

/* Only declared here: adapter.h's mail section sits outside its include
 * guard, so this header must not include it a second time. */
struct kn_adapter;
struct kn_message;
struct kn_result;
struct kn_http_resp;

/* Counters of one open LINE adapter (all zero for another adapter). */
struct kn_line_stats {
    uint64_t requests;        /* push/multicast requests answered */
    uint64_t token_issued;    /* v2.1 channel access tokens issued */
    uint64_t token_failures;  /* token requests that failed */
    uint64_t token_dropped;   /* issued tokens dropped after a 401 */
    uint64_t auth_refused;    /* 401/403 answers */
    uint64_t quota_exhausted; /* 429 "monthly limit" answers */
    uint64_t rate_limited;    /* 429 rate limit answers */
};

/* Copy the counters of a (opened with kn_adapter_line) into out. */
void kn_line_stats(const struct kn_adapter *a, struct kn_line_stats *out);

/* Shorthand: v2.1 tokens issued so far (0 with a long-lived token). */
uint64_t kn_line_token_refreshes(const struct kn_adapter *a);

/* ---- internal: exposed for tests ---- */

/* LINE's limit on user ids per multicast request. */
#define KN_LINE_MULTICAST_MAX 500

/*
 * The retry key for a key: a UUID (version 5 layout: SHA-1 of a fixed
 * namespace UUID and key, version and variant bits set), lower-case hex
 * with dashes, into out (37 bytes).  The same key always gives the same
 * UUID.  The adapter derives it from "<broadcast id>\n<job key>".
 */
void kn__line_retry_key(const char *key, char out[37]);

/*
 * The request body: {"to": id, "messages": [..]} for one address (push) or
 * {"to": [ids], "messages": [..]} for several (multicast), with the
 * texts of kn_message_line_texts() (model/message.h); link may be NULL.  Heap
 * string, or NULL if a text is not valid UTF-8.
 */
char *kn__line_body(const struct kn_message *m, const char *link,
                    const char *const *ids, size_t n, int multicast);

/*
 * Classify an answer of push/multicast into r (detail written into
 * detail[0..len): status, LINE's message and details, X-Line-Request-Id,
 * masked).  Sets r->auth for 401/403 and r->quota for the monthly limit.
 */
void kn__line_classify(const struct kn_http_resp *resp, struct kn_result *r,
                       char *detail, size_t len);

/* Mask LINE ids ([UCR] + 32 hex: "U4af***") in text, in place. */
void kn__line_mask_ids(char *text);

#endif
