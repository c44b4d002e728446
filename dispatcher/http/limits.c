/*
 * limits.c - what one client may take of the server: connections per
 * peer address (http.max_conns_per_peer), requests per second per source
 * address (token buckets: http.rate for the API, http.file_rate for the
 * embedded files), and the LINE webhook's own rate and concurrency for all
 * of LINE's servers together.
 */
#include "dispatcher/http/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "config/config.h"

/* FNV-1a: the slot of an address in the peer and rate tables. */
static unsigned addr_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

int kn__httpd_peer_is_proxy(const struct http_srv *s, const char *addr)
{
    for (size_t i = 0; i < s->nproxies; i++) {
        if (strcmp(s->proxies[i], addr) == 0)
            return 1;
    }
    return 0;
}

/* Count one more connection of addr; NULL if it has max_conns_per_peer. */
struct peer *kn__httpd_peer_take(struct http_srv *s, const char *addr)
{
    struct peer **pp = &s->peers[addr_hash(addr) % PEER_SLOTS], *p;
    for (p = *pp; p != NULL; p = p->next) {
        if (strcmp(p->addr, addr) == 0)
            break;
    }
    if (p == NULL) {
        p = kn_xcalloc(1, sizeof(*p));
        snprintf(p->addr, sizeof(p->addr), "%s", addr);
        p->next = *pp;
        *pp = p;
    }
    if (p->n >= (unsigned)s->cfg->http_max_conns_per_peer)
        return NULL;
    p->n++;
    return p;
}

void kn__httpd_peer_give(struct http_srv *s, struct peer *p)
{
    struct peer **pp;
    if (p == NULL || --p->n > 0)
        return;
    for (pp = &s->peers[addr_hash(p->addr) % PEER_SLOTS]; *pp != p;
         pp = &(*pp)->next)
        ;
    *pp = p->next;
    free(p);
}

/* ------------------------------------------------------------ rate limit */

/* Drop buckets that have refilled (they hold nothing worth keeping). */
void kn__httpd_rate_sweep(struct rtable *t, int64_t rate, int all)
{
    int64_t now = kn_mono_ms();
    double cap = (double)rate;
    for (size_t i = 0; i < RATE_SLOTS; i++) {
        struct rbucket **pp = &t->slot[i];
        while (*pp != NULL) {
            struct rbucket *b = *pp;
            double v = b->tokens + (double)(now - b->at) * cap / 1000.0;
            if (all || v >= cap) {
                *pp = b->next;
                free(b);
                t->n--;
            } else {
                pp = &b->next;
            }
        }
    }
}

void kn__httpd_rate_free(struct rtable *t)
{
    kn__httpd_rate_sweep(t, 1, 1);
}

/*
 * Token bucket per source address: rate requests per second, bursts of as
 * many.  Returns 1 if the request may go on, else 0 with the seconds to
 * wait in *retry_after.
 */
/* addr's bucket, or NULL. */
static struct rbucket *bucket_of(const struct rtable *t, const char *addr)
{
    struct rbucket *b = t->slot[addr_hash(addr) % RATE_SLOTS];
    while (b != NULL && strcmp(b->addr, addr) != 0)
        b = b->next;
    return b;
}

int kn__httpd_rate_take(struct rtable *t, int64_t rate, const char *addr,
                        int *retry_after)
{
    unsigned slot = addr_hash(addr) % RATE_SLOTS;
    double cap = (double)rate;
    int64_t now = kn_mono_ms();
    struct rbucket *b = bucket_of(t, addr);

    if (b == NULL) {
        if (t->n >= RATE_MAX)
            kn__httpd_rate_sweep(t, rate, 0);
        if (t->n >= RATE_MAX) /* under a flood of addresses: start over */
            kn__httpd_rate_sweep(t, rate, 1);
        b = kn_xcalloc(1, sizeof(*b));
        snprintf(b->addr, sizeof(b->addr), "%s", addr);
        b->tokens = cap;
        b->at = now;
        b->next = t->slot[slot];
        t->slot[slot] = b;
        t->n++;
    }
    b->tokens += (double)(now - b->at) * cap / 1000.0;
    if (b->tokens > cap)
        b->tokens = cap;
    b->at = now;
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 1;
    }
    *retry_after = (int)((1.0 - b->tokens) / cap + 0.999);
    if (*retry_after < 1)
        *retry_after = 1;
    return 0;
}

int kn__httpd_rate_peek(struct rtable *t, int64_t rate, const char *addr)
{
    const struct rbucket *b = bucket_of(t, addr);
    return b == NULL ||
           b->tokens + (double)(kn_mono_ms() - b->at) * (double)rate / 1000.0 >=
               1.0;
}

/* A webhook request whose signature did not hold: its source's record. */
void kn__httpd_hook_bad(struct conn *c)
{
    int retry = 0;
    (void)kn__httpd_rate_take(&c->srv->rl_hookbad, KN__HOOK_BAD_RATE,
                              c->req.net, &retry);
}

/* Refused before the body: a source whose bad signatures ran out its
 * record (a flood of forged requests), never LINE's or SendGrid's. */
int kn__httpd_hook_source_ok(struct conn *c)
{
    if (kn__httpd_rate_peek(&c->srv->rl_hookbad, KN__HOOK_BAD_RATE, c->req.net))
        return 1;
    kn__httpd_respond_error(c, 429, NULL,
                            "too many requests with a bad signature from "
                            "this address; try again later");
    return 0;
}

/*
 * The LINE webhook's own limits, for all of LINE's servers together (they
 * carry every user's events, so a limit per address would be no limit or
 * stop everyone): the signature header must be there before the body is
 * read (admit); once it is checked against the body, line.webhook_rate
 * requests a second and line.webhook_concurrency at once (take): forged
 * requests spend none of it, only their own source's record.
 */
int kn__httpd_line_admit(struct conn *c)
{
    const struct kn_config *cfg = c->srv->cfg;

    if (cfg->line_channel_secret == NULL ||
        cfg->line_channel_secret[0] == '\0') {
        kn__httpd_respond_error(
            c, 403, NULL, "the LINE webhook is off: set line.channel_secret");
        return 0;
    }
    if (c->req.line_sig == NULL || c->req.line_sig[0] == '\0') {
        kn__httpd_respond_error(c, 401, NULL, "missing X-Line-Signature");
        return 0;
    }
    return kn__httpd_hook_source_ok(c);
}

int kn__httpd_line_take(struct conn *c)
{
    struct http_srv *s = c->srv;
    const struct kn_config *cfg = s->cfg;
    double cap = (double)cfg->line_webhook_rate;
    int64_t now = kn_mono_ms();

    if (s->line_at == 0)
        s->line_tokens = cap;
    else
        s->line_tokens += (double)(now - s->line_at) * cap / 1000.0;
    if (s->line_tokens > cap)
        s->line_tokens = cap;
    s->line_at = now;
    if (s->line_tokens < 1.0) {
        json_t *j = json_object();
        json_object_set_new(j, "error",
                            json_string("too many LINE webhook requests "
                                        "(line.webhook_rate); try again"));
        json_object_set_new(j, "field", json_null());
        kn__httpd_respond_json(c, 429, j, "Retry-After: 1\r\n");
        return 0;
    }
    if (s->line_active >= cfg->line_webhook_concurrency) {
        kn__httpd_respond_error(c, 503, NULL,
                                "too many LINE webhook requests at once "
                                "(line.webhook_concurrency); try again");
        return 0;
    }
    s->line_tokens -= 1.0;
    s->line_active++;
    c->req.line_slot = 1;
    return 1;
}
