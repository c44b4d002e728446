/*
 * http_int.h - what the files of kairand's HTTP server (dispatcher/http/)
 * share and nothing else includes: the limits, the connection, request,
 * route and server types, and the kn__httpd_ helpers, grouped by the file
 * that defines them.  The server has no public API: it registers as a
 * kairand module (kn_http_module, dispatcher/module.h).
 */
#ifndef KN_DISPATCHER_HTTP_HTTP_INT_H
#define KN_DISPATCHER_HTTP_HTTP_INT_H

#include <http_parser.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/argv.h"
#include "common/buf.h"
#include "common/codec.h"
#include "config/config.h"
#include "dispatcher/daemon.h"
#include "model/gaiji.h"
#include "model/token.h"
#include "queue/scripts.h"

#define HTTP_MAX_URL          4096
#define HTTP_MAX_HEADER_VALUE 8192
#define HTTP_MAX_HEADERS      (32 * 1024) /* all headers of one request */
#define HTTP_REQUEST_MS       60000       /* a request must arrive within */
#define HTTP_SMALL_BODY       16384 /* routes other than submit, webhook */
#define HTTP_BACKLOG          1024
#define PEER_SLOTS            1024
#define PROXIES_MAX           32
#define HTTP_IDLE_MS          30000 /* keep-alive connection idle */
#define HTTP_LINGER_MS        2000  /* read and drop after a final answer */
#define HTTP_LINGER_BYTES     (4 << 20)
#define HTTP_LINGER_UNREAD    (64 << 10) /* after refusing a body unread */
#define GATHER_FRESH_MS       1000       /* queue gauges cached this long */
#define HISTORY_N             120  /* depth samples kept: 10 minutes ... */
#define HISTORY_EVERY_MS      5000 /* ... one every 5 s */
#define RECENT_MS             (15 * 60 * 1000) /* ended broadcasts still listed */
#define RATE_SLOTS            1024
#define RATE_MAX              65536 /* source addresses tracked */
#define LIST_MAX              100   /* broadcasts in ?active=1 */
#define LIST_RECENT           50    /* and, of every tenant's, the ended */

struct token {
    char id[KN_TOKEN_ID_MAX + 1];
    int role;
    char *tenant;
    char *name;
    char *groups; /* comma list (senders) */
    /* A staff session (session_auth.c) instead of a bearer token: id is
     * "st_<account id>", role the role it is authorized as (a tenant's
     * admin as limited_admin: a staff account never acts outside its
     * tenant), staff_role its own role. */
    int session;
    int staff_role;
    char *login;
    char sess[65];   /* the session's hash */
    long long gen;   /* the account's session generation */
    int must_change; /* the initial password is still to be changed */
    int totp_owed;   /* an admin must set up TOTP first */
};

struct conn;
struct http_srv;
struct login; /* a login or password change (session.c) */

enum route_id {
    R_PAGE,
    R_JS,
    R_CSS,
    R_FAVICON,
    R_HEALTH,
    R_METRICS,
    R_QUEUES,
    R_HISTORY,
    R_BC_LIST,
    R_BC_SUBMIT,
    R_BC_GET,
    R_BC_CANCEL,
    R_ACK_GET,
    R_BC_RCPTS,
    R_BC_RCPTS_CSV,
    R_ACK_POST,
    R_LINE_HOOK,
    R_SG_HOOK,
    R_SESSION_LOGIN,
    R_SESSION_END,
    R_SESSION_PASSWORD,
    R_SESSION_TOTP,
    R_SESSION_GET,
    R_CONSOLE_BARE,
    R_CONSOLE_INDEX,
    R_CONSOLE_FILE,
    R_BC_RESEND,
    R_GROUPS,
    R_DIRECTORY,
    R_CATEGORIES,
    R_TPL_LIST,
    R_TPL_PUT,
    R_TPL_DELETE,
    R_BC_PREVIEW,
    R_BC_TEST,
    R_DIR_IMPORT,
    R_DIR_SHEETS,
    R_DIR_UNREG,
    R_DIR_REMIND,
    R_STAFF_LIST,
    R_STAFF_ADD,
    R_STAFF_DEACTIVATE,
    R_STAFF_RESET,
    R_STAFF_ROLE,
    R_STAFF_GROUPS,
    R_LOGS,
    R_DIR_GET,
    R_DIR_PATCH,
    R_SUPP_CLEAR,
    R_REG_PAGE,
    R_REG_FILE,
    R_REG_START,
    R_REG_EMAIL,
    R_REG_VERIFY,
    R_REG_APP,
    R_REG_LINE,
    R_DEVICES,
    R_BC_PHONES,
    R_UNSUB_GET, /* issue 16: one-click unsubscribe (unsub.c) */
    R_UNSUB_POST,
    R_MY_PAGE,
    R_MY_FILE,
    R_MY_VIEW,
    R_MY_SAVE,
    R_MY_CODE,
    R_MY_LINK
};

#define ROLE(r) (1u << (r))
#define STAFF   (ROLE(KN_ROLE_ADMIN) | ROLE(KN_ROLE_LIMITED_ADMIN))
#define ANYROLE (STAFF | ROLE(KN_ROLE_SENDER) | ROLE(KN_ROLE_OPERATOR))

struct route {
    enum route_id id;
    unsigned method;     /* enum http_method */
    const char *pattern; /* "{}" matches one path segment */
    unsigned roles;      /* 0: no token needed */
    int limited;         /* LIM_*: which per-address rate it counts against */
    void (*run)(struct conn *c);
};

/* Where framing.c is in a request's bytes (all zero: at its start). */
struct frame {
    int state;
    int cr;         /* a CR was read: an LF must follow */
    int colon;      /* the field line's colon was read */
    unsigned lines; /* complete lines of the head or trailer */
    size_t col;     /* bytes of the current line */
    uint64_t left;  /* the chunk's size, then its bytes still to come */
};

/* One request; a connection answers one at a time (pipelined requests
 * wait in the socket or in c->pending). */
struct req {
    struct kn_buf url, hfield, hval, body;
    char *authz, *ctype, *real_ip, *expect;
    char *line_sig;               /* X-Line-Signature */
    char *sg_sig, *sg_ts;         /* X-Twilio-Email-Event-Webhook-... */
    char *cookie, *origin, *csrf; /* Cookie, Origin, X-CSRF-Token */
    int background; /* X-Kairan-Background: 1, the console's own polling:
                     * not a person's activity (session_auth.c) */
    size_t header_bytes;
    int in_value;
    int trailer;    /* the head is complete: fields now are a trailer's */
    int te_lines;   /* Transfer-Encoding field lines */
    int host_lines; /* Host header lines (RFC 9112 3.2: exactly one) */
    int te_other;   /* one of them is not exactly "chunked" */
    int dup_authz;
    int started;
    int head_paused; /* a body follows: the head is checked first */
    int ready;       /* checked (route, rate, token): read the body */
    int want_continue;
    int line_slot; /* holds one of line.webhook_concurrency */
    int sg_slot;   /* holds one of the SendGrid webhook's (sendgrid_events.c) */
    size_t body_cap;
    char allow[64]; /* methods of the path when none matched */
    int complete;
    int keep_alive;
    int early_status; /* 413/414/431 found while parsing */
    const char *early_msg;
    unsigned method;
    char *path;  /* percent-decoded */
    char *query; /* raw, may be NULL */
    char source[64];
    /* what the per-address limits count: source, but an IPv6 address's
     * /64 (kn__httpd_source_net) */
    char net[72];
    const struct route *route;
    char *param; /* the {} segment */
    struct token tok;
    const char *auth_result; /* NULL: no token looked at */
    const char *device;      /* a login: what its device cookie was (session.c:
                              * "none", "invalid", "expired", "locked",
                              * "trusted"), for the login log; NULL otherwise */
    char *bc_id;             /* submit: the id being stored */
    char *bc_tenant;         /* its tenant (operation log) */
    char *bc_key;            /* submit: the producer's key, or NULL */
    char *ack_rcpt;          /* /a/{token}: the recipient */
    int ack_guardian;        /* /a/{token}: its guardian, -1 unnamed */
    char *ack_lang;          /* /a/{token}?l=: a translation, or NULL */
    char *ack_error;         /* /a/{token}: a refused answer, what to fix */
    char *resend_of;         /* a re-send: the broadcast it repeats */
    long long resend_n;      /* a re-send: its children */
    json_t *remind; /* a reminder (sheets.c): its counts, for the answer */
    int64_t t0;
    struct frame frame; /* framing.c's checks, over what the parser took */
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shut;
    struct http_srv *srv;
    http_parser parser;
    struct req req;
    char *pending; /* input read but not yet parsed (pipelining) */
    size_t npending;
    char peer[64];
    int open_handles;
    int refs; /* async operations that will call back with this conn */
    int closed;
    int reading;
    int busy; /* a request is being answered */
    int close_after;
    int lingering;
    int writing; /* an answer is being written: send_timeout_ms runs */
    size_t linger_bytes;
    size_t held;       /* body bytes counted in srv->buffered */
    struct peer *slot; /* its peer's count; NULL for a proxy */
    struct conn *next, *prev;
    struct conn *wait_next; /* waiting for the queue gauges */
};

struct qstats {
    int ok;
    long long len[KN_QUEUE_STREAMS], pending[KN_QUEUE_STREAMS];
    long long first_ms[KN_QUEUE_STREAMS]; /* oldest entry's time; 0 none */
    long long retry, dlq, active;
    int64_t at_ms;
};

struct sample {
    int64_t t;
    long long jobs[KN_CH__COUNT];
};

struct rbucket {
    struct rbucket *next;
    double tokens;
    int64_t at;
    char addr[64];
};

/* A route's rate limit: none, http.rate (the API and anything reading
 * data), or http.file_rate (files embedded in kairand: pages, scripts,
 * styles, strings, which a school's staff behind one address load many at
 * once and which cost no Redis call). */
enum { LIM_NONE = 0, LIM_API = 1, LIM_FILE = 2 };

/* Token buckets per source address for one of the rates. */
struct rtable {
    struct rbucket *slot[RATE_SLOTS];
    size_t n;
};

/* Open connections of one peer address, and the request body bytes they
 * hold (at most a quarter of http.max_buffered, or http.max_body if more:
 * one client trickling large bodies does not fill the server's budget for
 * everyone; a trusted proxy has no record: it buffers). */
struct peer {
    struct peer *next;
    unsigned n;
    size_t held;
    char addr[64];
};

struct http_srv {
    struct kn_daemon *d;
    const struct kn_config *cfg;
    uv_tcp_t listener;
    uv_timer_t tick;
    int live; /* open handles, connections and batches in flight */
    int closing;
    struct conn *conns;
    size_t nconns;
    int64_t warned_full;
    struct qstats qs;
    int64_t qs_mono; /* when qs was read; 0 never */
    int gathering;
    struct conn *waiters;
    struct sample hist[HISTORY_N];
    size_t hist_n, hist_head;
    int64_t next_sample, next_sweep;
    struct rtable rl_api, rl_file; /* http.rate, http.file_rate */
    struct rtable rl_hookbad;      /* bad webhook signatures per source */
    struct peer *peers[PEER_SLOTS];
    char proxies[PROXIES_MAX][64]; /* http.trusted_proxies, as peers read */
    size_t nproxies;
    size_t buffered; /* body bytes held, all connections */
    /* One read buffer for every connection: each read is parsed (what must
     * stay is copied) before the loop reads anything else, so a
     * connection costs no buffer of its own while it waits. */
    char rbuf[65536];
    int line_active; /* webhook requests being worked on */
    int sg_active;   /* SendGrid webhook requests being worked on */
    double sg_tokens;
    int64_t sg_at;
    double line_tokens;
    int64_t line_at;
    /* LINE's Reply API for link codes (register.c), opened on first use */
    struct kn_adapter line_reply;
    int64_t warned_peer;
    /* redis.wait_replicas > 0: submits go on this connection of their
     * own, each followed by WAIT (which blocks its connection). */
    struct kn_redis *wait;
    int hashing; /* password hashes running on the thread pool */
    /* logins waiting for a hash slot, first first (session.c) */
    struct login *hash_queue;
    int log_reads; /* /v1/logs reads (up to 8 MiB each) on the pool */
    /* directory jobs (imports, sheets) running on the pool: at most
     * KN__DIR_JOBS at once and one per tenant (kn__httpd_dir_job_take),
     * so that no tenant holds them all */
    int importing;
    char *job_tenant[2];
    /* ?active=1&summary=tenant, the same for every token that may ask it:
     * kept a moment (broadcasts.c), so that open status pages cost one
     * count of the active index, not one each. */
    json_t *summary;
    int64_t summary_mono;
    /* The registration page's computed files, made once (register.c):
     * GET /r/langs.json (from the embedded strings files) and GET
     * /r/line-qr.svg (of line.add_friend_url, which it was made of). */
    json_t *reg_langs;
    char *reg_qr, *reg_qr_url;
};

struct wreq {
    uv_write_t w;
    struct conn *c;
    char *data;
};

/*
 * A batch: several Redis commands sent at once on d->cmd (pipelined) and
 * one callback when every reply is in.  Replies are copied (hiredis frees
 * its own when each callback returns).  done always runs, with b->c NULL
 * if the connection it answers closed meanwhile, so that it can free
 * b->arg.
 */
struct batch;
typedef void batch_done_cb(struct batch *b);

struct batch {
    struct http_srv *srv;
    struct conn *c; /* held; NULL for the server's own reads */
    batch_done_cb *done;
    void *arg;
    int n, cap, left, failed;
    redisReply **rep;
};

/* ---- server.c ---- */

void kn__httpd_srv_unref(struct http_srv *s);
void kn__httpd_req_reset(struct req *r);
void kn__httpd_req_release(struct conn *c);
void kn__httpd_conn_close(struct conn *c);
void kn__httpd_conn_hold(struct conn *c);
int kn__httpd_conn_release(struct conn *c);
void kn__httpd_read_start(struct conn *c);
/* Let the parser go on: feed what was read ahead, then read again. */
void kn__httpd_resume(struct conn *c);
void kn__httpd_read_stop(struct conn *c);
void kn__httpd_on_timer(uv_timer_t *t);
void kn__httpd_body_timer(struct conn *c);
void kn__httpd_on_written(uv_write_t *w, int status);

/* ---- parser.c ---- */

void kn__httpd_conn_feed(struct conn *c, const char *data, size_t len);
void kn__httpd_send_continue(struct conn *c);

/* ---- framing.c ---- */

/* The bytes data[0..n) the parser has just consumed, in order: NULL, or
 * why their framing must be refused (400, then close). */
const char *kn__httpd_frame_check(struct conn *c, const char *data, size_t n);

/* ---- limits.c ---- */

int kn__httpd_peer_is_proxy(const struct http_srv *s, const char *addr);
struct peer *kn__httpd_peer_take(struct http_srv *s, const char *addr);
void kn__httpd_peer_give(struct http_srv *s, struct peer *p);
void kn__httpd_rate_sweep(struct rtable *t, int64_t rate, int all);
void kn__httpd_rate_free(struct rtable *t);
int kn__httpd_rate_take(struct rtable *t, int64_t rate, const char *addr,
                        int *retry_after);
/* 1 if addr's bucket holds a token now (nothing taken). */
int kn__httpd_rate_peek(struct rtable *t, int64_t rate, const char *addr);
/* The webhooks (LINE, SendGrid): their shared budget and slots are for
 * requests whose signature holds, taken once it is checked (take, 0 if
 * answered already); before the body, only the key, the headers and the
 * source's record of bad signatures (admit).  A bad signature counts
 * against its source (hook_bad): HOOK_BAD_RATE a second. */
#define KN__HOOK_BAD_RATE 2
int kn__httpd_line_admit(struct conn *c);
int kn__httpd_line_take(struct conn *c);
void kn__httpd_hook_bad(struct conn *c);
int kn__httpd_hook_source_ok(struct conn *c);
/* POST /sendgrid/events (sendgrid_events.c): as above.  Its body cap. */
int kn__httpd_sg_admit(struct conn *c);
int kn__httpd_sg_take(struct conn *c);
#define KN_SG_HOOK_MAX_BODY (2 * 1024 * 1024)

/* The table scripts/embed.c writes with -t (the same layout is defined
 * there): the console's files, the registration page's strings. */
struct kn_embedded {
    const char *name;
    const char *data;
    size_t len;
};

/* ---- respond.c ---- */

extern const char *const kn__httpd_csp_page;
void kn__httpd_respond(struct conn *c, int status, const char *ctype,
                       const char *body, size_t len, const char *csp,
                       const char *extra);
/* The unsubscribe page's strings and style read (unsub.c; idempotent). */
void kn__httpd_unsub_init(void);
/* Whether the token is bound to one tenant (a staff session, a token
 * made with --tenant, a limited_admin or a sender, which always are): then
 * it reaches that tenant's data only, whatever its role (none at all if it
 * has none); an admin or operator token without one sees every tenant. */
static inline int kn__httpd_tok_scoped(const struct token *t)
{
    return t->session || t->role == KN_ROLE_LIMITED_ADMIN ||
           t->role == KN_ROLE_SENDER ||
           (t->tenant != NULL && t->tenant[0] != '\0');
}
void kn__httpd_respond_json(struct conn *c, int status, json_t *j,
                            const char *extra);
void kn__httpd_respond_error(struct conn *c, int status, const char *field,
                             const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* With "code": a fixed word per failure that the guardians' pages
 * translate (their strings "e_<code>"); "error" stays for other readers. */
void kn__httpd_respond_coded(struct conn *c, int status, const char *field,
                             const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/*
 * A text refused for a private-use character (model/gaiji.h): 400
 * {"error": "<ja> (<en>)", "field", "code", "at" (the character's place,
 * 1-based), "excerpt" (the text with 〓 for it, or null for an address)},
 * Japanese first as the other errors of the pages say.  Returns 1 after
 * answering, or 0 (nothing said) if s holds no such character.  field_ja
 * names the field for the reader (お名前, 保護者の氏名).
 */
int kn__httpd_refuse_gaiji(struct conn *c, const char *s,
                           enum kn_gaiji_kind kind, const char *field,
                           const char *code, const char *field_ja);
/* What a guardian reads when kairan cannot answer for a moment (Redis
 * unreachable, the operation log not writable): no word of the inside. */
#define KN__HTTPD_BUSY                                                                               \
    "ただいま処理できません。少し待ってから、もう一度お試しください " \
    "(this cannot be done right now: try again in a moment)"

/* ---- util.c ---- */

/* A directory job's slot (roster.c, sheets.c): at most
 * KN_ARRAY_SIZE(job_tenant) at once and one per tenant.  The slot, or -1
 * (then 503: try again in a few seconds). */
int kn__httpd_dir_job_take(struct http_srv *s, const char *tenant);
void kn__httpd_dir_job_give(struct http_srv *s, int slot);

void kn__httpd_free_secret(char **s);
json_t *kn__httpd_jtime(long long ms);
char *kn__httpd_dupstr(const char *s);
json_t *kn__httpd_jstr_or_null(const char *s);
json_t *kn__httpd_jstr_text(const char *s);
char *kn__httpd_query_get(const char *q, const char *name);
int kn__httpd_query_has(const char *q, const char *name);

/* ---- batch.c ---- */

const char *kn__httpd_rstr(const redisReply *r);
/* Element i of an array reply (an HMGET's field) as kn__httpd_rstr gives
 * it; NULL when r is no array (an error) or is shorter. */
const char *kn__httpd_relem(const redisReply *r, int i);
long long kn__httpd_rnum(const redisReply *r);
struct batch *kn__httpd_batch_new(struct http_srv *s, struct conn *c,
                                  batch_done_cb *done, void *arg);
void kn__httpd_batch_add(struct batch *b, struct kn_argv *a);
void kn__httpd_batch_cmd(struct batch *b, const char *first, ...)
    __attribute__((sentinel));
/* Count one try in key (INCR, or HINCRBY of field when not NULL), and give
 * the count ttl_ms to live from its first try (PEXPIRE NX): two commands,
 * the count the first one's reply.  Counted before it is judged, tries
 * sent at once cannot all pass a check of the count. */
void kn__httpd_batch_count(struct batch *b, const char *key, const char *field,
                           long long ttl_ms);
void kn__httpd_batch_end(struct batch *b);
const redisReply *kn__httpd_brep(const struct batch *b, int i);
/* 1 if a batch's replies can be used; 0 when the client is gone or Redis
 * failed (then 503 is answered). */
int kn__httpd_batch_usable(struct batch *b);

/* ---- routes.c ---- */

void kn__httpd_route_find(struct conn *c);
void kn__httpd_run_ready(struct conn *c);
void kn__httpd_go(struct conn *c);
void kn__httpd_dispatch(struct conn *c);

/* ---- auth.c ---- */

void kn__httpd_token_reset(struct token *t);
void kn__httpd_auth_start(struct conn *c);

/* A session's check is done (session_auth.c): the route's roles next. */
void kn__httpd_auth_done(struct conn *c);

/* ---- session_auth.c ---- */

/* Authenticate a request by its session cookie (no Authorization). */
void kn__httpd_session_start(struct conn *c);

/* ---- session.c ---- */

/* At most this many password hashes at once (on the libuv thread pool).
 * A login beyond them waits its turn, at most HASH_WAIT_MAX of them and
 * one from each address (an IPv6 /64 is one); beyond that 503 with
 * Retry-After. */
#define HASH_MAX      2
#define HASH_WAIT_MAX 64

/* A hash slot was given back: start the logins waiting for one (or,
 * while the server closes, answer them 503). */
void kn__httpd_hash_next(struct http_srv *s);

void kn__httpd_run_login(struct conn *c);
void kn__httpd_run_logout(struct conn *c);
void kn__httpd_run_password(struct conn *c);
void kn__httpd_run_totp(struct conn *c);
/* GET /v1/session: who the session (or token) is. */
void kn__httpd_run_session_get(struct conn *c);

/* ---- metrics.c ---- */

/* Commands 0..GATHER_N-1 of a batch (kn__httpd_gather_add): three per stream,
 * then retry, dlq, active.  The same reads as kairanctl status, and never more.
 */
#define GATHER_N (3 * KN_QUEUE_STREAMS + 3)

void kn__httpd_gather_add(struct batch *b);
void kn__httpd_gather_parse(const struct batch *b, struct qstats *q);
void kn__httpd_gather_start(struct http_srv *s);
void kn__httpd_run_metrics(struct conn *c);
void kn__httpd_run_health(struct conn *c);

/* ---- queues.c ---- */

void kn__httpd_run_queues(struct conn *c);
void kn__httpd_run_history(struct conn *c);

/* ---- broadcasts.c (reads), bc_submit.c (writes) ---- */

void kn__httpd_run_bc_get(struct conn *c);
void kn__httpd_run_bc_list(struct conn *c);
void kn__httpd_run_bc_submit(struct conn *c);
void kn__httpd_run_bc_cancel(struct conn *c);
struct kn_broadcast;
/* Parse a request's broadcast as a submit does (role rules included):
 * 0, or -1 with the answer given. */
int kn__httpd_bc_parse(struct conn *c, struct kn_broadcast *b);
/* Store a checked broadcast and answer 202 (or an error); frees b. */
void kn__httpd_bc_store(struct conn *c, struct kn_broadcast *b);
/* 1 if a Content-Type is type ("application/json"), whatever its
 * parameters (charset). */
int kn__httpd_ctype_is(const char *ctype, const char *type);
/* The language code of an embedded strings file's name,
 * "strings-<code>.json", into code (cap bytes): 0, or -1 for a name of
 * another shape or a code that does not fit (the guardian pages). */
int kn__httpd_strings_code(const char *name, char *code, size_t cap);
/* 0 if the operation log can be written, else 503 answered and -1. */
int kn__httpd_audit_ready(struct conn *c);
/* May this token read a broadcast of this tenant sent with this token? */
int kn__httpd_bc_may_see(const struct conn *c, const char *tenant,
                         const char *owner_token);

/* ---- recipients.c ---- */

void kn__httpd_run_bc_rcpts(struct conn *c);
void kn__httpd_run_bc_rcpts_csv(struct conn *c);

/* Which children a re-send picks (kn__httpd_rcpts_pick). */
#define KN__PICK_UNREACHED   1
#define KN__PICK_UNCONFIRMED 2
/* Called once every page is read: ids (borrowed) the directory ids
 * picked, skipped how many would have been but cannot be addressed by id
 * (inline recipients, no contact on the channels). */
typedef void kn__httpd_pick_cb(struct conn *c, struct kn_argv *ids,
                               long long skipped, void *arg);
/* Walk broadcast bid's audience as the recipients pages do and call done
 * (which then owns arg) once every page is read.  When it cannot be (a
 * broadcast this token may not see is answered 404; Redis failed; the
 * client left), done is never called and free_arg(arg) is. */
void kn__httpd_rcpts_pick(struct conn *c, const char *bid, int which,
                          kn__httpd_pick_cb *done, void (*free_arg)(void *),
                          void *arg);

/* ---- confirm.c ---- */

void kn__httpd_run_ack_get(struct conn *c);
void kn__httpd_run_ack_post(struct conn *c);
/* unsub.c: GET and POST /u/{token} (RFC 8058 one-click unsubscribe) */
void kn__httpd_run_unsub_get(struct conn *c);
void kn__httpd_run_unsub_post(struct conn *c);

/* ---- line_webhook.c ---- */

void kn__httpd_run_line_hook(struct conn *c);
/* register.c: a text message from a LINE user carrying a link code (the
 * digits): link the user to the sign-up, answer through the Reply API. */
void kn__httpd_line_link(struct http_srv *s, const char *user_id,
                         const char *code, const char *reply_token);
void kn__httpd_line_reply_close(struct http_srv *s);
void kn__httpd_run_sg_hook(struct conn *c);

/* ---- compose.c, templates.c, preview.c (the console's 新規連絡) ---- */

/* The tenant a request reads: the token's, or ?tenant=T for a token of
 * none.  Heap, or NULL with 400 answered. */
char *kn__httpd_req_tenant(struct conn *c);
/* Sort ids and drop repeats, at most max kept: 1 if some were left out. */
int kn__httpd_ids_unique(struct kn_argv *a, int max);
void kn__httpd_run_groups(struct conn *c);
void kn__httpd_run_directory(struct conn *c);
void kn__httpd_run_categories(struct conn *c);
void kn__httpd_run_tpl_list(struct conn *c);
void kn__httpd_run_tpl_put(struct conn *c);
void kn__httpd_run_tpl_delete(struct conn *c);
void kn__httpd_run_bc_preview(struct conn *c);
void kn__httpd_run_bc_test(struct conn *c);

/* ---- roster.c ---- */

void kn__httpd_run_dir_import(struct conn *c);

/* sheets.c: registration sheets, 未登録 and the reminder (issue 15) */
void kn__httpd_run_dir_sheets(struct conn *c);
void kn__httpd_run_dir_unreg(struct conn *c);
void kn__httpd_run_dir_remind(struct conn *c);
/* A reminder was stored: its operation log line, its counts into the
 * submit's answer. */
void kn__httpd_remind_stored(struct conn *c, json_t *answer);

/* ---- directory_edit.c ---- */

void kn__httpd_run_dir_get(struct conn *c);
void kn__httpd_run_dir_patch(struct conn *c);
void kn__httpd_run_supp_clear(struct conn *c);

/* ---- staff_admin.c ---- */

void kn__httpd_run_staff_list(struct conn *c);
void kn__httpd_run_staff_add(struct conn *c);
void kn__httpd_run_staff_deactivate(struct conn *c);
void kn__httpd_run_staff_reset(struct conn *c);
void kn__httpd_run_staff_role(struct conn *c);
void kn__httpd_run_staff_groups(struct conn *c);
void kn__httpd_run_logs(struct conn *c);

/* ---- register.c ---- */

void kn__httpd_run_register_page(struct conn *c);
void kn__httpd_run_register_file(struct conn *c);
void kn__httpd_run_register_start(struct conn *c);
void kn__httpd_run_register_email(struct conn *c);
void kn__httpd_run_register_verify(struct conn *c);
void kn__httpd_run_register_app(struct conn *c);
void kn__httpd_run_register_line(struct conn *c);
void kn__httpd_run_devices(struct conn *c);
/* What register.c and register_link.c share. */
#define KN__REG_LINE_QR "line-qr.svg" /* GET /r/line-qr.svg */
/* A sign-up's ticket as the page sends it back (made at the first step). */
int kn__reg_ticket_ok(const char *ticket);
/* The page's language sent with a step ("lang", optional): NULL or a
 * valid tag is fine; anything else is refused, once here. */
int kn__reg_lang_ok(const char *lang);
void kn__reg_bad_lang(struct conn *c);
/* The answer to a request without a usable ticket. */
void kn__reg_bad_ticket(struct conn *c);
/* One line to the operation log (never an address). */
void kn__reg_op_log(struct http_srv *s, const char *source, const char *via,
                    const char *op, const char *tenant, const char *rcpt);
/* Mail the child's other contacts that a guardian joined (the reply of
 * reg_verify.lua or reg_line.lua: {1, tenant, rcpt, child name, guardian
 * name, relation, naddr addresses...}, every personal value sealed). */
void kn__reg_tell_contacts(struct http_srv *s, const redisReply *rep,
                           size_t naddr);
/* GET /r/line-qr.svg (register_link.c). */
void kn__reg_line_qr(struct conn *c);

/* ---- guardian_mail.c ---- */

/*
 * Send one message to each address of to[0..n) (plaintext) on channel
 * ("email" or "line"), recipient i named ids[i]: an urgent broadcast of
 * the tenant by sender.  Returns 0, or -1 after logging why (the caller
 * answers 503).
 */
int kn__httpd_guardian_send(struct http_srv *s, const char *tenant,
                            const char *sender, const char *channel,
                            const char *const *ids, const char *const *to,
                            size_t n, const char *subject, const char *body);

/* The guardian pages' Content-Security-Policy (registration, my page):
 * this origin only, no inline code, Trusted Types with no policy. */
extern const char kn__httpd_csp_guardian[];

/* A page's file embedded at build time (scripts/embed.c). */
struct kn__web_file {
    const char *name, *ctype;
    const char *data;
    const size_t *len;
};

/* Answer the file of files[0..n) named c->req.param under csp, or 404. */
void kn__httpd_serve_file(struct conn *c, const struct kn__web_file *files,
                          size_t n, const char *csp);

/* The request's JSON object, or NULL after answering 415 or 400. */
json_t *kn__httpd_json_object(struct conn *c);

/* Unseal s with purpose (NULL or "": NULL); a heap string (free it with
 * kn__httpd_free_secret) or NULL. */
char *kn__httpd_unseal_opt(const struct kn_keyring *kr, const char *purpose,
                           const char *s);

/* ---- mypage.c ---- */

void kn__httpd_run_mypage_page(struct conn *c);
void kn__httpd_run_mypage_file(struct conn *c);
void kn__httpd_run_mypage_view(struct conn *c);
void kn__httpd_run_mypage_save(struct conn *c);
void kn__httpd_run_mypage_code(struct conn *c);
void kn__httpd_run_mypage_link(struct conn *c);
/* What mypage.c and mypage_link.c share: the child's guardian with the
 * index ix, as pref_set.lua finds it (the record itself, its "g", then
 * the registrations; borrowed, or NULL), and the key of kind ("mpc", ...)
 * named by the keyed hash of what. */
json_t *kn__mp_find_guardian(json_t *rec, json_t *reg, const char *ix);
char *kn__mp_key(const struct kn_daemon *d, const char *kind, const char *what);

/* ---- phones.c ---- */

void kn__httpd_run_bc_phones(struct conn *c);

/* ---- page.c ---- */

void kn__httpd_run_page(struct conn *c);
void kn__httpd_run_css(struct conn *c);
void kn__httpd_run_favicon(struct conn *c);
void kn__httpd_run_js(struct conn *c);

/* ---- console.c ---- */

extern const char *const kn__httpd_csp_console;
void kn__httpd_run_console_bare(struct conn *c);
void kn__httpd_run_console_index(struct conn *c);
void kn__httpd_run_console_file(struct conn *c);

/* ---- resend.c ---- */

/* POST /v1/broadcasts/{name}/resend: a new broadcast to the children not
 * reached or not confirmed. */
void kn__httpd_run_bc_resend(struct conn *c);

/*
 * The network of a source address, as every per-address limit counts it
 * (rates, tries, connection slots, login locks): an IPv6 address's /64
 * ("2001:db8:1:2::/64": one home or office holds a /64, and whoever has
 * one has 2^64 addresses), an IPv4 (or IPv4-mapped) address itself.
 */
void kn__httpd_source_net(const char *src, char *out, size_t n);

/* session.c, shared with session_totp.c: a route that needs a staff
 * session (0, or 400 answered); a change's operation-log line; whether
 * the log can be written (0, or 503 answered: nothing is changed). */
int kn__sess_need(struct conn *c);
void kn__sess_op_log(struct conn *c, const char *op);
int kn__sess_op_ready(struct conn *c);
/* End the request's session (its hash and its place in the account's
 * set, on the command connection, before anything later); returns the
 * header line that clears the cookie (heap, "Set-Cookie: ...\r\n"). */
char *kn__sess_end(struct conn *c);

#endif
