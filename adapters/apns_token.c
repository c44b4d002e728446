/*
 * apns_token.c - APNs' provider token (PROVIDERS.md 3): an ES256 JWT
 * ({"alg":"ES256","kid"}, {"iss":team,"iat"}) signed with the team's .p8
 * key, and when to replace it.
 *
 * Apple wants one token per team, not one per connection or process: a
 * token is refreshed no more than once every 20 minutes (sooner: 429
 * TooManyProviderTokenUpdates, and the connection stays unusable a while)
 * and no less than once an hour (older: 403 ExpiredProviderToken).  So the
 * token is shared by every kairand through the dispatcher (adapter.h,
 * struct kn_adapter_host; sealed in Redis as cred:apns:<team>.<key
 * id>.<key fingerprint>, model/cred.h):
 *   1. Before the first push a process adopts the stored token; when there
 *      is none it signs one and offers it (compare-and-set: of several
 *      processes starting together one stores its token, the others get
 *      that one in the reply and adopt it).
 *   2. A timer (apns.token_check_ms, a minute, jittered) reads it again
 *      and adopts a newer one; when the token in use reaches its renewal
 *      age, 40 to 50 minutes drawn at random per token so that the
 *      processes do not all try at once, it offers a new one the same way:
 *      exactly one process renews, the others adopt.
 *   3. A token is never replaced younger than 20 minutes, unless APNs
 *      answered 403 ExpiredProviderToken or InvalidProviderToken for it;
 *      then it is replaced once, shared (the replacement is marked early,
 *      and an early token is not replaced early again).
 *   4. When the store cannot be used (Redis unreachable, a record that does
 *      not open), the process signs and keeps its own token, logged, and
 *      tries to share again at the next timer: pushes never wait for
 *      Redis.
 * Without a host (unit tests, tools) the token is this process's own, with
 * the same age rules.  This file never logs a token or a key.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/jwt.h"
#include "adapters/push.h"
#include "common/codec.h"
#include "common/kn.h"
#include "common/log.h"

/* How often a process reads the shared token again by default
 * (apns.token_check_ms), plus up to a quarter of it at random. */
#define CHECK_MS (60 * 1000)
/* How long the store keeps a token: twice APNs' hour. */
#define STORE_TTL_MS (2 * 3600 * 1000LL)

enum tok_state {
    TOK_NONE,   /* nothing to send with yet: sends wait */
    TOK_SHARED, /* the token stored for every process */
    TOK_LOCAL,  /* this process's own: no host, or the store failed */
};

static const char *tok_state_name(enum tok_state s)
{
    switch (s) {
    case TOK_NONE:
        return "none";
    case TOK_SHARED:
        return "shared";
    case TOK_LOCAL:
        return "local";
    }
    return "?";
}

enum step_why { STEP_SEND, STEP_TIMER, STEP_REFUSED };

struct tok_call;

struct kn__apns_token {
    EVP_PKEY *key; /* a reference of our own */
    char *key_id, *team_id;
    char *account; /* <team>.<kid>.<16 hex of the key's SHA-256> */
    const struct kn_adapter_host *host; /* NULL: keep it local */
    kn__apns_token_cb *ready;
    void *arg;
    char *jwt, *header; /* the token in use and its header line */
    int64_t iat_ms;
    uint64_t gen;        /* tokens put in use by this process (q->gen) */
    uint64_t stored_gen; /* its generation in the store; 0: not stored */
    int early;           /* it replaced one before its 20 minutes */
    int64_t renew_ms;    /* renew it from this age */
    enum tok_state state;
    struct tok_call *call; /* the store call in flight, or NULL */
    uint64_t refused_gen;  /* refused while a call ran: act after it */
    uint64_t warned_gen;   /* the clock warning was logged for it */
    int store_failing;     /* the fallback was logged (once a spell) */
    int sign_failed;       /* the last signature failed (no token) */
    int in_get;            /* inside kn__apns_token_get: no ready() */
    uint64_t signed_n;     /* tokens this process signed and used */
    uv_timer_t timer;
    int timer_on;
    int64_t check_ms;
};

struct tok_call {
    struct kn__apns_token *t; /* NULL once the token is closed */
    int refused;              /* a get after APNs refused our token */
    char *offered;            /* an offer: our JWT (heap) */
    int64_t offered_iat;
};

/* ---- pure parts (unit-tested) ---- */

int kn__apns_renew_due(int64_t iat_ms, int64_t now_ms, int64_t renew_ms,
                       int refused, int early)
{
    int64_t age = now_ms - iat_ms;
    if (iat_ms <= 0)
        return KN__APNS_RENEW;
    if (age < -60 * 1000)
        return KN__APNS_RENEW; /* dated in the future: the clock went back */
    if (age >= renew_ms)
        return KN__APNS_RENEW;
    if (!refused)
        return KN__APNS_KEEP;
    if (age >= KN_APNS_JWT_MIN_AGE_MS)
        return KN__APNS_RENEW;
    return early ? KN__APNS_KEEP : KN__APNS_RENEW_EARLY;
}

/* The JSON object of a JWT's base64url part [s, s + n), or NULL. */
static json_t *jwt_part(const char *s, size_t n)
{
    char *part = kn_xstrndup(s, n);
    unsigned char *raw = NULL;
    long len = kn_b64url_decode(part, &raw);
    json_t *j =
        len >= 0 ? json_loadb((const char *)raw, (size_t)len, 0, NULL) : NULL;
    free(part);
    free(raw);
    return j;
}

/* 1 if o's member key is the string want. */
static int member_is(const json_t *o, const char *key, const char *want)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v != NULL && strcmp(v, want) == 0;
}

int kn__apns_jwt_check(EVP_PKEY *key, const char *key_id, const char *team_id,
                       const char *jwt, int64_t iat_ms)
{
    const char *d1 = jwt ? strchr(jwt, '.') : NULL;
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    json_t *h, *c;
    int ok;
    if (d2 == NULL || kn_jwt_verify(key, jwt) != 1)
        return 0;
    h = jwt_part(jwt, (size_t)(d1 - jwt));
    c = jwt_part(d1 + 1, (size_t)(d2 - d1 - 1));
    ok = member_is(h, "alg", "ES256") && member_is(h, "kid", key_id) &&
         member_is(c, "iss", team_id) &&
         json_is_integer(json_object_get(c, "iat")) &&
         json_integer_value(json_object_get(c, "iat")) * 1000 == iat_ms;
    json_decref(h);
    json_decref(c);
    return ok;
}

/* ---- the token in use ---- */

/* Sign a token dated now.  Returns the JWT (heap) or NULL (logged). */
static char *sign(const struct kn__apns_token *t, int64_t *iat_ms)
{
    int64_t iat = kn_now_ms() / 1000;
    json_t *h = json_pack("{s:s, s:s}", "alg", "ES256", "kid", t->key_id);
    json_t *c =
        json_pack("{s:s, s:I}", "iss", t->team_id, "iat", (json_int_t)iat);
    char *hs = json_dumps(h, JSON_COMPACT), *cs = json_dumps(c, JSON_COMPACT);
    char *jwt = hs && cs ? kn_jwt_sign(t->key, "ES256", hs, cs) : NULL;
    json_decref(h);
    json_decref(c);
    free(hs);
    free(cs);
    if (jwt == NULL)
        kn_log(KN_LOG_ERROR, "apns", "cannot sign the provider token", NULL);
    *iat_ms = iat * 1000;
    return jwt;
}

static void forget(struct kn__apns_token *t)
{
    kn_free_secret(t->jwt);
    kn_free_secret(t->header);
    t->jwt = t->header = NULL;
}

/* Change state (logged when it changes). */
static void set_state(struct kn__apns_token *t, enum tok_state s)
{
    if (t->state != s)
        kn_log(KN_LOG_DEBUG, "apns", "provider token", "from",
               tok_state_name(t->state), "to", tok_state_name(s), NULL);
    t->state = s;
}

/*
 * Send with jwt (copied) from now on: issued at iat_ms, stored as
 * generation stored_gen (0: this process's own).  how: "renewed" (we
 * signed it) or "adopted" (another process did).  The same token again
 * only updates what is known of it.
 */
static void use(struct kn__apns_token *t, const char *jwt, int64_t iat_ms,
                uint64_t stored_gen, int early, const char *how)
{
    char age[24], gen[24];
    t->stored_gen = stored_gen;
    t->early = early;
    t->sign_failed = 0;
    set_state(t, stored_gen ? TOK_SHARED : TOK_LOCAL);
    if (t->jwt != NULL && strcmp(t->jwt, jwt) == 0)
        return;
    forget(t);
    t->jwt = kn_xstrdup(jwt);
    t->header = kn_xasprintf("authorization: bearer %s", jwt);
    t->iat_ms = iat_ms;
    t->gen++;
    /* Renew between 40 and 50 minutes of age, at random: processes
     * adopting the same token then do not all offer a new one at once. */
    t->renew_ms = KN_APNS_JWT_RENEW_MIN_MS +
                  (int64_t)kn_random_below(KN_APNS_JWT_RENEW_MAX_MS -
                                           KN_APNS_JWT_RENEW_MIN_MS + 1);
    if (how[0] == 'r')
        t->signed_n++;
    snprintf(age, sizeof(age), "%lld",
             (long long)((kn_now_ms() - iat_ms) / 1000));
    snprintf(gen, sizeof(gen), "%llu", (unsigned long long)stored_gen);
    kn_log(KN_LOG_INFO, "apns",
           how[0] == 'r' ? "provider token renewed" : "provider token adopted",
           "shared", stored_gen ? "yes" : "no (this process only)",
           "generation", gen, "age_s", age, "early", early ? "yes" : "no",
           NULL);
}

static void call_ready(struct kn__apns_token *t)
{
    if (!t->in_get && t->ready != NULL)
        t->ready(t->arg);
}

/* Sign a new token and use it as this process's own. */
static void use_local_new(struct kn__apns_token *t, int early)
{
    int64_t iat;
    char *jwt = sign(t, &iat);
    if (jwt == NULL) {
        if (t->jwt == NULL)
            t->sign_failed = 1;
        return;
    }
    use(t, jwt, iat, 0, early, "renewed");
    kn_free_secret(jwt);
}

/*
 * The store could not be used (rc): keep the token in use, or sign one of
 * our own when there is none or it is due (pushes must not wait for
 * Redis).  Logged once a spell; the timer tries to share again.
 */
static void fallback(struct kn__apns_token *t, int rc, int refused)
{
    int d = kn__apns_renew_due(t->iat_ms, kn_now_ms(), t->renew_ms, refused,
                               t->early);
    if (!t->store_failing)
        kn_log(KN_LOG_WARN, "apns",
               "the shared provider token cannot be used: this process "
               "uses its own until Redis answers again",
               "error", kn_strerror(rc), NULL);
    t->store_failing = 1;
    if (t->jwt == NULL || d != KN__APNS_KEEP)
        use_local_new(t, d == KN__APNS_RENEW_EARLY);
    else
        set_state(t, TOK_LOCAL);
}

/* The store answered: sharing works (again). */
static void store_ok(struct kn__apns_token *t)
{
    if (t->store_failing)
        kn_log(KN_LOG_INFO, "apns", "sharing the provider token again", NULL);
    t->store_failing = 0;
}

static void step(struct kn__apns_token *t, enum step_why why);

/* A call is over: act on a refusal that came meanwhile. */
static void after_call(struct kn__apns_token *t)
{
    call_ready(t);
    if (t->refused_gen != 0 && t->refused_gen == t->gen && t->call == NULL) {
        t->refused_gen = 0;
        step(t, STEP_REFUSED);
    }
    t->refused_gen = 0;
}

static struct tok_call *call_new(struct kn__apns_token *t)
{
    struct tok_call *c = kn_xcalloc(1, sizeof(*c));
    c->t = t;
    return c;
}

static void call_free(struct tok_call *c)
{
    kn_free_secret(c->offered);
    free(c);
}

static void on_offered(int rc, const struct kn_shared_cred *sc, void *arg);

/*
 * Offer a new token (or jwt, this process's own, when not NULL) to replace
 * stored generation gen.  A store that refuses at once: fallback.
 */
static void offer(struct kn__apns_token *t, uint64_t gen, int early,
                  const char *jwt, int64_t jwt_iat)
{
    struct tok_call *c = call_new(t);
    struct kn_shared_cred sc = {
        .gen = gen, .early = early, .ttl_ms = STORE_TTL_MS};
    int rc;
    if (jwt != NULL) {
        c->offered = kn_xstrdup(jwt);
        c->offered_iat = jwt_iat;
    } else {
        c->offered = sign(t, &c->offered_iat);
    }
    if (c->offered == NULL) {
        if (t->jwt == NULL)
            t->sign_failed = 1;
        call_free(c);
        return;
    }
    sc.value = c->offered;
    sc.iat_ms = c->offered_iat;
    t->call = c;
    rc = t->host->cred_offer(t->host->ctx, "apns", t->account, &sc, on_offered,
                             c);
    if (rc < 0) {
        t->call = NULL;
        fallback(t, rc, 0);
        call_free(c);
    }
}

static void on_got(int rc, const struct kn_shared_cred *sc, void *arg);

static void get(struct kn__apns_token *t, int refused)
{
    struct tok_call *c = call_new(t);
    int rc;
    c->refused = refused;
    t->call = c;
    rc = t->host->cred_get(t->host->ctx, "apns", t->account, on_got, c);
    if (rc < 0) {
        t->call = NULL;
        call_free(c);
        fallback(t, rc, refused);
    }
}

static int usable(const struct kn__apns_token *t,
                  const struct kn_shared_cred *sc)
{
    return kn__apns_jwt_check(t->key, t->key_id, t->team_id, sc->value,
                              sc->iat_ms);
}

static void on_got(int rc, const struct kn_shared_cred *sc, void *arg)
{
    struct tok_call *c = arg;
    struct kn__apns_token *t = c->t;
    int refused = c->refused, d;
    call_free(c);
    if (t == NULL)
        return; /* closed meanwhile */
    t->call = NULL;
    if (rc < 0) {
        fallback(t, rc, refused);
    } else if (sc->value == NULL) {
        /* Nothing stored: ours becomes everyone's (the token this process
         * kept alone, if it may stay, else a new one). */
        store_ok(t);
        d = kn__apns_renew_due(t->iat_ms, kn_now_ms(), t->renew_ms, refused,
                               t->early);
        if (t->jwt != NULL && d == KN__APNS_KEEP)
            offer(t, 0, t->early, t->jwt, t->iat_ms);
        else
            offer(t, 0, d == KN__APNS_RENEW_EARLY, NULL, 0);
    } else if (!usable(t, sc)) {
        /* Not a token of this key (written by hand?): replace it. */
        store_ok(t);
        kn_log(KN_LOG_ERROR, "apns",
               "the shared provider token is not one of this key: replacing "
               "it",
               NULL);
        offer(t, sc->gen, 0, NULL, 0);
    } else {
        store_ok(t);
        /* A refusal was of the token we used: the stored one, if it is
         * another, was not refused. */
        if (refused && t->jwt != NULL && strcmp(t->jwt, sc->value) != 0)
            refused = 0;
        d = kn__apns_renew_due(sc->iat_ms, kn_now_ms(), t->renew_ms, refused,
                               sc->early);
        if (d != KN__APNS_KEEP)
            offer(t, sc->gen, d == KN__APNS_RENEW_EARLY, NULL, 0);
        else
            use(t, sc->value, sc->iat_ms, sc->gen, sc->early, "adopted");
    }
    if (t->call == NULL)
        after_call(t);
}

static void on_offered(int rc, const struct kn_shared_cred *sc, void *arg)
{
    struct tok_call *c = arg;
    struct kn__apns_token *t = c->t;
    if (t == NULL) {
        call_free(c);
        return;
    }
    t->call = NULL;
    if (rc < 0 || sc->value == NULL) {
        /* The store failed: ours is signed and due, use it alone. */
        fallback(t, rc < 0 ? rc : KN_EREDIS, 0);
    } else if (strcmp(sc->value, c->offered) == 0) {
        store_ok(t);
        use(t, c->offered, c->offered_iat, sc->gen, sc->early,
            t->jwt != NULL && strcmp(t->jwt, c->offered) == 0 ? "adopted"
                                                              : "renewed");
    } else if (usable(t, sc)) {
        /* Another process renewed first: its token is everyone's. */
        store_ok(t);
        use(t, sc->value, sc->iat_ms, sc->gen, sc->early, "adopted");
    } else {
        fallback(t, KN_ECRYPTO, 0);
    }
    call_free(c);
    after_call(t);
}

/*
 * Decide what to do with the token (why: a send, the timer, a refusal of
 * the token in use):
 *  1. A store call is running: a refusal is remembered for after it.
 *  2. No host: sign our own when due (kn__apns_renew_due).
 *  3. No shared token yet (none, or our own since the store failed): read
 *     the store (a send before the first token waits for it).
 *  4. The shared token is due: offer a new one to replace it.
 *  5. Otherwise the timer reads the store for a newer one; a refusal of a
 *     young token already replaced early is only logged (the clock?).
 */
static void step(struct kn__apns_token *t, enum step_why why)
{
    int d;
    if (t->call != NULL) {
        if (why == STEP_REFUSED)
            t->refused_gen = t->gen;
        return;
    }
    d = kn__apns_renew_due(t->iat_ms, kn_now_ms(), t->renew_ms,
                           why == STEP_REFUSED, t->early);
    if (t->host == NULL) {
        if (t->jwt == NULL || d != KN__APNS_KEEP)
            use_local_new(t, d == KN__APNS_RENEW_EARLY);
        return;
    }
    if (t->state != TOK_SHARED) {
        if (why != STEP_SEND || t->state == TOK_NONE || d != KN__APNS_KEEP)
            get(t, why == STEP_REFUSED);
        return;
    }
    if (d != KN__APNS_KEEP)
        offer(t, t->stored_gen, d == KN__APNS_RENEW_EARLY, NULL, 0);
    else if (why == STEP_TIMER)
        get(t, 0);
}

static void on_timer(uv_timer_t *h);

/* The next read of the store: check_ms plus up to a quarter of it, so that
 * processes started together do not read (and renew) together. */
static void timer_again(struct kn__apns_token *t)
{
    uint64_t ms =
        (uint64_t)t->check_ms + kn_random_below((uint64_t)t->check_ms / 4 + 1);
    uv_timer_start(&t->timer, on_timer, ms, 0);
}

static void on_timer(uv_timer_t *h)
{
    struct kn__apns_token *t = kn_container_of(h, struct kn__apns_token, timer);
    /* Nothing sent yet: nothing to keep fresh (and Redis may not be
     * connected at start: no fallback for that). */
    if (t->state != TOK_NONE)
        step(t, STEP_TIMER);
    timer_again(t);
}

/* ---- the API (push.h) ---- */

/* <team>.<kid>.<16 hex of SHA-256 of the public key (DER)>: installations
 * with different keys under one prefix never share a token. */
static char *account_of(EVP_PKEY *key, const char *team, const char *kid)
{
    unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    char hex[17];
    int len = i2d_PUBKEY(key, &der);
    if (len <= 0 ||
        EVP_Digest(der, (size_t)len, md, &n, EVP_sha256(), NULL) != 1)
        KN_PANIC("cannot hash the APNs public key");
    OPENSSL_free(der);
    kn_hex_encode(md, 8, hex);
    return kn_xasprintf("%s.%s.%s", team, kid, hex);
}

struct kn__apns_token *
kn__apns_token_new(uv_loop_t *loop, EVP_PKEY *key, const char *key_id,
                   const char *team_id, const struct kn_adapter_host *host,
                   int64_t check_ms, kn__apns_token_cb *ready, void *arg)
{
    struct kn__apns_token *t = kn_xcalloc(1, sizeof(*t));
    EVP_PKEY_up_ref(key);
    t->key = key;
    t->key_id = kn_xstrdup(key_id);
    t->team_id = kn_xstrdup(team_id);
    t->account = account_of(key, team_id, key_id);
    t->ready = ready;
    t->arg = arg;
    t->renew_ms = KN_APNS_JWT_RENEW_MIN_MS;
    if (host != NULL && host->cred_get != NULL && host->cred_offer != NULL) {
        t->host = host;
        t->check_ms = check_ms > 0 ? check_ms : CHECK_MS;
        uv_timer_init(loop, &t->timer);
        timer_again(t);
        t->timer_on = 1;
    }
    return t;
}

int kn__apns_token_get(struct kn__apns_token *t, const char **header,
                       uint64_t *gen)
{
    t->in_get = 1;
    if (t->jwt == NULL ||
        kn__apns_renew_due(t->iat_ms, kn_now_ms(), t->renew_ms, 0, t->early) !=
            KN__APNS_KEEP)
        step(t, STEP_SEND);
    t->in_get = 0;
    *header = t->header;
    *gen = t->gen;
    if (t->header != NULL)
        return 0;
    return t->call != NULL ? KN_EAGAIN : KN_ECRYPTO;
}

void kn__apns_token_refused(struct kn__apns_token *t, uint64_t gen,
                            char *detail, size_t n)
{
    size_t l = strlen(detail);
    if (gen != t->gen) {
        snprintf(detail + l, n - l,
                 " (sent with an older provider token; replaced since)");
        return;
    }
    if (kn__apns_renew_due(t->iat_ms, kn_now_ms(), t->renew_ms, 1, t->early) ==
        KN__APNS_KEEP) {
        snprintf(detail + l, n - l,
                 " (provider token younger than 20 minutes and replaced "
                 "early once already: not replaced; is the clock right?)");
        if (t->warned_gen != t->gen) /* once per token, not per job */
            kn_log(KN_LOG_WARN, "apns",
                   "APNs refused a provider token younger than 20 minutes "
                   "that already replaced one early: not replaced",
                   "hint", "check this host's clock (NTP) and apns.key_file",
                   NULL);
        t->warned_gen = t->gen;
        return;
    }
    snprintf(detail + l, n - l, " (provider token being replaced)");
    step(t, STEP_REFUSED);
}

uint64_t kn__apns_token_signed(const struct kn__apns_token *t)
{
    return t->signed_n;
}

static void token_free(struct kn__apns_token *t)
{
    forget(t);
    EVP_PKEY_free(t->key);
    free(t->key_id);
    free(t->team_id);
    free(t->account);
    free(t);
}

static void on_timer_closed(uv_handle_t *h)
{
    token_free(kn_container_of((uv_timer_t *)h, struct kn__apns_token, timer));
}

void kn__apns_token_close(struct kn__apns_token *t)
{
    if (t->call != NULL)
        t->call->t = NULL; /* its answer is dropped when it comes */
    t->call = NULL;
    t->ready = NULL;
    if (t->timer_on)
        uv_close((uv_handle_t *)&t->timer, on_timer_closed);
    else
        token_free(t);
}
