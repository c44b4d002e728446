/*
 * purge.c - the kairand module that runs the retention purge
 * (queue/retention.c) once a day, on a libuv worker thread (uv_queue_work)
 * with its own short-lived connection: the loop never waits for it.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "common/kn.h"
#include "common/log.h"
#include "dispatcher/daemon.h"
#include "dispatcher/module.h"
#include "queue/retention.h"

/* ---------------------------------------------------------------- module */

#define PURGE_FIRST_MS (5 * 60 * 1000) /* after start */
#define PURGE_EVERY_MS (86400 * 1000LL)

struct purger {
    struct kn_daemon *d;
    uv_timer_t timer;
    uv_work_t work;
    int running;
    int closing;
    int rc;
    struct kn_purge_stats st;
    char err[300];
};

static void purge_work(uv_work_t *w)
{
    struct purger *p = kn_container_of(w, struct purger, work);
    redisContext *c = kn__redis_sync(p->d->cfg);
    p->rc = KN_EIO;
    p->err[0] = '\0';
    if (c == NULL) {
        snprintf(p->err, sizeof(p->err), "cannot reach Redis");
        return;
    }
    p->rc =
        kn_purge_run(c, p->d->cfg, kn_now_ms(), &p->st, p->err, sizeof(p->err));
    redisFree(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct purger *p = h->data;
    if (!p->running)
        free(p);
    else
        p->closing = 2; /* freed when the work returns */
}

static void purge_done(uv_work_t *w, int status)
{
    struct purger *p = kn_container_of(w, struct purger, work);
    char a[24], b[24], c[24], t[24];
    p->running = 0;
    if (p->closing == 2) {
        free(p);
        return;
    }
    if (p->rc == KN_EAGAIN) {
        kn_log(KN_LOG_INFO, "purge", "another process is purging", NULL);
    } else if (p->rc < 0) {
        kn_log(KN_LOG_ERROR, "purge", "purge failed", "error", p->err, NULL);
    } else {
        snprintf(a, sizeof(a), "%lld", p->st.broadcasts);
        snprintf(b, sizeof(b), "%lld", p->st.delivery_records);
        snprintf(c, sizeof(c), "%lld", p->st.audit_lines);
        char sa[24], rg[24], dl[24];
        snprintf(dl, sizeof(dl), "%lld", p->st.dlq_entries);
        snprintf(t, sizeof(t), "%lld", p->st.tenants);
        snprintf(sa, sizeof(sa), "%lld", p->st.staff_accounts);
        snprintf(rg, sizeof(rg), "%lld", p->st.registrations);
        kn_log(KN_LOG_INFO, "purge", "purge done", "broadcasts", a,
               "delivery_records", b, "dlq_entries", dl, "audit_lines", c,
               "tenants", t, "staff_accounts", sa, "registrations", rg, NULL);
    }
}

static void on_purge_timer(uv_timer_t *t)
{
    struct purger *p = t->data;
    if (p->running || p->closing)
        return;
    p->running = 1;
    if (uv_queue_work(p->d->loop, &p->work, purge_work, purge_done) != 0)
        p->running = 0;
}

static int purge_open(struct kn_daemon *d, void **state)
{
    struct purger *p = kn_xcalloc(1, sizeof(*p));
    p->d = d;
    uv_timer_init(d->loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, on_purge_timer, PURGE_FIRST_MS, PURGE_EVERY_MS);
    uv_unref((uv_handle_t *)&p->timer);
    *state = p;
    return 0;
}

static void purge_close(struct kn_daemon *d, void *state)
{
    struct purger *p = state;
    if (p == NULL)
        return;
    p->closing = 1;
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, on_timer_closed);
}

struct kn_module kn_purge_module = {
    .name = "purge",
    .open = purge_open,
    .close = purge_close,
};
