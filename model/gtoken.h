/*
 * gtoken.h - the links a guardian gets in every message (issue 16): the
 * personal "my page" link and the one-click unsubscribe link (RFC 8058).
 * Neither needs a login, so each is signed and names exactly one guardian
 * of one child of one tenant, by the blind index of the address the
 * message went to (the directory's "ei", "li" or a push token's "ti",
 * model/directory.h): never the address itself.
 *
 * Token: base64url(payload) "." 32 hex digits of the keyed MAC, where
 * payload is "g1|<use>|<tenant>|<child id>|<index>|<expires ms>|<extra>"
 * and the MAC is kn_blind_index(purpose "gtoken") of the payload (the key
 * file's index key: a rotation of the encryption key keeps links valid).
 * extra is last and may hold '|': the category for KN_GTOKEN_UNSUB.
 * Tokens of one use are refused as another's.
 */
#ifndef KN_MODEL_GTOKEN_H
#define KN_MODEL_GTOKEN_H

#include <stddef.h>
#include <stdint.h>

struct kn_keyring;

enum kn_gtoken_use {
    KN_GTOKEN_MYPAGE = 'm', /* the guardian's page; extra "" */
    KN_GTOKEN_UNSUB = 'u'   /* opt out of the category in extra */
};

/* How long a my-page link is valid (the foot of every e-mail, the "send
 * me my link" mail). */
#define KN_GTOKEN_MYPAGE_MS (30LL * 24 * 60 * 60 * 1000)

#define KN_GTOKEN_MAX 600 /* a longer presented token is refused unread */

struct kn_gtoken {
    int use;              /* enum kn_gtoken_use */
    char *tenant, *child; /* heap */
    char index[33];       /* the address' blind index (hex) */
    int64_t expires_ms;   /* 0: never */
    char *extra;          /* heap, "" when none */
};

/*
 * Make a token.  tenant must pass kn_tenant_valid, child kn_id_valid,
 * index be 32 hex digits and extra hold no NUL (a category name); returns
 * NULL otherwise.  Heap string.
 */
char *kn_gtoken_make(const struct kn_keyring *kr, int use, const char *tenant,
                     const char *child, const char *index, int64_t expires_ms,
                     const char *extra);

/*
 * Check a presented token for use at now_ms.  Returns 0 and fills out
 * (kn_gtoken_free), KN_EINVAL when it is malformed, altered, forged or of
 * another use, KN_ETIMEDOUT when it is genuine but expired (out is then
 * filled too, so that a page can offer to send a new link).
 */
int kn_gtoken_parse(const struct kn_keyring *kr, const char *token, int use,
                    int64_t now_ms, struct kn_gtoken *out);

void kn_gtoken_free(struct kn_gtoken *t);

/* How long a one-click unsubscribe link stays valid: a guardian may click
 * it in a mail of last year. */
#define KN_GTOKEN_UNSUB_DAYS 400

/*
 * The one-click unsubscribe URL of an e-mail (RFC 8058, issue 16):
 * "<public_url>/u/<token>", the token a KN_GTOKEN_UNSUB of tenant, child,
 * the address' blind index and category, expiring KN_GTOKEN_UNSUB_DAYS
 * after now_ms.  NULL when public_url is not https:// (RFC 8058 section 3:
 * the URI must be HTTPS) or a part is not valid.  Heap string.
 */
char *kn_gtoken_unsub_url(const struct kn_keyring *kr, const char *public_url,
                          const char *tenant, const char *child,
                          const char *index, const char *category,
                          int64_t now_ms);

/*
 * 1 if a POST to a one-click unsubscribe URL carries what RFC 8058 section
 * 3.1 says it must: the field List-Unsubscribe=One-Click, as
 * application/x-www-form-urlencoded (one of its &-separated fields) or as
 * multipart/form-data (a part named "List-Unsubscribe" whose content is
 * "One-Click", with the boundary of ctype).  ctype is the request's
 * Content-Type (NULL: none).  0 for anything else.
 */
int kn_gtoken_unsub_form_ok(const char *ctype, const char *body, size_t len);

#endif
