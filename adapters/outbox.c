/*
 * outbox.c - the simplest adapter: every e-mail job becomes an .eml file
 * (exactly the bytes SMTP would send) under outbox.dir/<broadcast>/, and
 * every other channel a .json file with what would be sent.  Used by the
 * demo, by tests, and by operators who want to see output without a relay.
 *
 * Files are written through libuv's thread pool (uv_fs_*), never on the
 * loop thread, to a temporary name and then renamed, so a reader never
 * sees half a message.  A failure to write (directory unwritable, disk
 * full) is a tempfail with the reason: the job is retried, not dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "adapters/adapter.h"
#include "common/kn.h"
#include "common/log.h"
#include "config/config.h"

struct outbox {
    char *dir;
    size_t slots;
    size_t in_flight;
    int closing; /* closed with writes still in the thread pool */
    struct kn_mail_conf mail;
};

static void outbox_free(struct outbox *ob)
{
    kn__mail_conf_free(&ob->mail);
    free(ob->dir);
    free(ob);
}

enum write_step { STEP_MKDIR, STEP_OPEN, STEP_WRITE, STEP_CLOSE, STEP_RENAME };

struct outbox_write {
    uv_fs_t req;
    struct outbox *ob;
    struct kn_job *job;
    kn_done_cb *done;
    void *arg;
    enum write_step step;
    uv_file fd;
    int err; /* first libuv error, 0 if none */
    char *subdir, *tmp, *final;
    char *data;
    size_t len;
    char detail[256];
};

static void step(uv_fs_t *req);

static void finish(struct outbox_write *w)
{
    struct kn_result r = {.status = KN_DELIVERED};
    if (w->err != 0) {
        snprintf(w->detail, sizeof(w->detail), "outbox: cannot write %s: %s",
                 w->final, uv_strerror(w->err));
        r.status = KN_TEMPFAIL;
        r.detail = w->detail;
        kn_log(KN_LOG_WARN, "outbox", "cannot write a message; it is retried",
               "error", w->detail, NULL);
    }
    w->ob->in_flight--;
    if (!w->ob->closing)
        w->done(w->job, &r, w->arg);
    else if (w->ob->in_flight == 0)
        outbox_free(w->ob); /* the last write after close */
    free(w->subdir);
    free(w->tmp);
    free(w->final);
    free(w->data);
    free(w);
}

/* Advance the chain mkdir -> open -> write -> close -> rename. */
static void step(uv_fs_t *req)
{
    struct outbox_write *w = kn_container_of(req, struct outbox_write, req);
    uv_loop_t *loop = req->loop;
    ssize_t res = req->result;
    int rc = 0;
    uv_buf_t buf;

    uv_fs_req_cleanup(req);
    switch (w->step) {
    case STEP_MKDIR:
        if (res < 0 && res != UV_EEXIST) {
            w->err = (int)res;
            finish(w);
            return;
        }
        w->step = STEP_OPEN;
        rc = uv_fs_open(loop, req, w->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0640,
                        step);
        break;
    case STEP_OPEN:
        if (res < 0) {
            w->err = (int)res;
            finish(w);
            return;
        }
        w->fd = (uv_file)res;
        w->step = STEP_WRITE;
        buf = uv_buf_init(w->data, (unsigned)w->len);
        rc = uv_fs_write(loop, req, w->fd, &buf, 1, 0, step);
        break;
    case STEP_WRITE:
        if (res < 0 || (size_t)res != w->len)
            w->err = res < 0 ? (int)res : UV_ENOSPC;
        w->step = STEP_CLOSE;
        rc = uv_fs_close(loop, req, w->fd, step);
        break;
    case STEP_CLOSE:
        if (res < 0 && w->err == 0)
            w->err = (int)res;
        if (w->err != 0) {
            uv_fs_t un;
            uv_fs_unlink(NULL, &un, w->tmp, NULL); /* best effort */
            uv_fs_req_cleanup(&un);
            finish(w);
            return;
        }
        w->step = STEP_RENAME;
        rc = uv_fs_rename(loop, req, w->tmp, w->final, step);
        break;
    case STEP_RENAME:
        if (res < 0)
            w->err = (int)res;
        finish(w);
        return;
    }
    if (rc < 0) {
        w->err = rc;
        finish(w);
    }
}

/* File names use only the safe characters of ids; the rest become '_'. */
static char *safe_name(const char *s)
{
    char *o = kn_xstrdup(s);
    for (char *p = o; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
            *p = '_';
    }
    if (o[0] == '.')
        o[0] = '_';
    return o;
}

/* mkdir -p at start (blocking is fine before the loop runs). */
static int mkdir_p(const char *dir)
{
    char *p = kn_xstrdup(dir);
    int rc = 0;
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0750) < 0 && errno != EEXIST)
                rc = -1;
            *s = '/';
        }
    }
    if (mkdir(p, 0750) < 0 && errno != EEXIST)
        rc = -1;
    if (rc == 0) {
        struct stat st;
        if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode)) {
            errno = ENOTDIR;
            rc = -1;
        }
    }
    free(p);
    return rc;
}

static int outbox_open(struct kn_adapter *a, const struct kn_config *cfg)
{
    struct outbox *ob = kn_xcalloc(1, sizeof(*ob));
    int rc = kn__mail_conf_init(&ob->mail, cfg);
    if (rc < 0) {
        free(ob);
        return rc;
    }
    ob->dir = kn_xstrdup(cfg->outbox_dir);
    ob->slots = (size_t)cfg->outbox_slots;
    if (mkdir_p(ob->dir) < 0)
        kn_log(KN_LOG_WARN, "outbox",
               "cannot create the outbox directory; "
               "writes will be retried",
               "dir", ob->dir, "error", strerror(errno), NULL);
    a->priv = ob;
    kn_log(KN_LOG_INFO, "outbox", "writing messages as files", "dir", ob->dir,
           NULL);
    return 0;
}

static int outbox_send(struct kn_adapter *a, struct kn_job **jobs, size_t n,
                       kn_done_cb *done, void *arg)
{
    struct outbox *ob = a->priv;
    for (size_t i = 0; i < n; i++) {
        struct kn_job *job = jobs[i];
        struct outbox_write *w = kn_xcalloc(1, sizeof(*w));
        char *bc = safe_name(job->msg->bcast), *rc = safe_name(job->rcpt);
        int err;
        w->ob = ob;
        w->job = job;
        w->done = done;
        w->arg = arg;
        if (strcmp(job->channel, "email") == 0) {
            err = kn__mail_build(&ob->mail, job, &w->data, &w->len);
            if (err < 0) {
                struct kn_result r = {
                    .status = KN_PERMFAIL,
                    .detail = "outbox: message cannot be built (control "
                              "character or bad UTF-8)"};
                free(bc);
                free(rc);
                free(w);
                done(job, &r, arg);
                continue;
            }
        } else {
            /* Non-mail channels: a JSON record of what would be sent. */
            w->data = kn_xasprintf("{\"channel\":\"%s\",\"bindex\":\"%s\"}\n",
                                   job->channel, job->bindex);
            w->len = strlen(w->data);
        }
        w->subdir = kn_xasprintf("%s/%s", ob->dir, bc);
        w->final =
            kn_xasprintf("%s/%s-%.8s.%s", w->subdir, rc, job->bindex,
                         strcmp(job->channel, "email") == 0 ? "eml" : "json");
        w->tmp = kn_xasprintf("%s/.tmp-%s-%s-%.8s", w->subdir, job->channel, rc,
                              job->bindex);
        free(bc);
        free(rc);
        ob->in_flight++;
        w->step = STEP_MKDIR;
        err = uv_fs_mkdir(a->loop, &w->req, w->subdir, 0750, step);
        if (err < 0) {
            w->err = err;
            finish(w);
        }
    }
    return 0;
}

static size_t outbox_in_flight(struct kn_adapter *a)
{
    return ((struct outbox *)a->priv)->in_flight;
}

static size_t outbox_capacity(struct kn_adapter *a)
{
    return ((struct outbox *)a->priv)->slots;
}

static void outbox_close(struct kn_adapter *a)
{
    struct outbox *ob = a->priv;
    /* Writes in the thread pool cannot be cancelled once started: if some
     * are still running, their owners are not told (they stay pending in
     * Redis) and the last one frees the outbox. */
    a->priv = NULL;
    if (ob->in_flight > 0)
        ob->closing = 1;
    else
        outbox_free(ob);
}

const struct kn_adapter_ops kn_adapter_outbox = {
    .name = "outbox",
    .max_batch = 1,
    .open = outbox_open,
    .send = outbox_send,
    .in_flight = outbox_in_flight,
    .capacity = outbox_capacity,
    .close = outbox_close,
};
