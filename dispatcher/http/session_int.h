/*
 * session_int.h - what the staff login (session.c) and the password
 * change (session_password.c) share: the state of one password check on
 * the hash pool, and the steps both take.  Private to those two files.
 */
#ifndef KN_HTTP_SESSION_INT_H
#define KN_HTTP_SESSION_INT_H

#include "dispatcher/http/http_int.h"
#include "model/device.h"
#include "model/password.h"

/*
 * What a login's device cookie was (model/device.h).  Only DEV_TRUSTED is
 * trusted: a genuine cookie of this account, unexpired, not locked.
 */
enum dev_state { DEV_NONE, DEV_INVALID, DEV_EXPIRED, DEV_LOCKED, DEV_TRUSTED };

struct devstate {
    enum dev_state state;
    struct kn_device dev; /* DEV_TRUSTED, DEV_LOCKED: the cookie's */
    int counted; /* untrusted: this try is in luntr already (hash_run) */
};

/* Fields of the account read with a login (session.c's acct_fields), in
 * this order. */
enum {
    A_ID,
    A_ROLE,
    A_NAME,
    A_GROUPS,
    A_ACTIVE,
    A_HASH,
    A_MUST,
    A_TOTP,
    A_GEN,
    A_TOTP_LAST,
    A__N
};

/* One password check: a login, or a password change (change 1). */
struct login {
    uv_work_t work;
    uv_timer_t delay;
    struct conn *c;
    struct http_srv *srv;
    char *tenant, *login, *password, *code;
    char *newpw; /* password change: the new password */
    char *a[A__N];
    char encoded[KN_PW_ENCODED]; /* password change: the new hash */
    int known, ok, change;
    struct devstate ds;
    long long delay_ms;
    long long pwtry;    /* password change: this try's number in the session */
    struct login *next; /* in srv->hash_queue */
};

/* The request refused: status, the login log's result, the field and the
 * message of the JSON error. */
void kn__login_refuse(struct conn *c, int status, const char *result,
                      const char *field, const char *msg);
/* lfail:<tenant>:<login>:<the source's network> (heap). */
char *kn__login_fail_key(struct conn *c, const char *tenant, const char *login);
/* Count a failure of (tenant, login) from the request's source. */
void kn__login_count_failure(struct conn *c, const char *tenant,
                             const char *login);
/* A new session for (tenant, login) of generation gen, answered to c with
 * reply (taken) and its cookies; totp_step: the TOTP step used (-1 none);
 * ds: the login's device state (NULL: a password change). */
void kn__login_session_make(struct conn *c, const char *tenant,
                            const char *login, long long gen, json_t *reply,
                            long long totp_step, const struct devstate *ds);
void kn__login_free(struct login *l);
/* Start l's hash on the pool, or queue it for a free slot (the conn is
 * held), or answer 503: -1 (l to free). */
int kn__login_hash_start(struct login *l);
/* session_password.c: a password change's hash is checked (l->ok). */
void kn__login_password_done(struct login *l);

#endif
