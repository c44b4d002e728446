/*
 * audit.c - the audit logs' appender (see audit.h): one JSON line per
 * event to a file under retention.audit_dir, written so that the lines of
 * kairand and of every kairanctl never interleave.
 */
#include "model/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "common/kn.h"
#include "common/text.h"

/* mkdir -p with mode for every missing component. */
static int mkdir_p(const char *dir, mode_t mode)
{
    char *p = kn_xstrdup(dir);
    int rc = 0;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST)
            rc = -1;
        *s = '/';
    }
    if (mkdir(p, mode) < 0 && errno != EEXIST)
        rc = -1;
    free(p);
    return rc;
}

static int open_log(const char *dir, const char *file)
{
    char *path;
    int fd;
    if (dir == NULL || dir[0] == '\0')
        dir = ".";
    path = kn_xasprintf("%s/%s", dir, file);
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0 && errno == ENOENT) {
        mkdir_p(dir, 0750);
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    }
    free(path);
    return fd;
}

int kn_audit_ready(const char *dir)
{
    int fd = open_log(dir, "operations.jsonl");
    if (fd < 0)
        return KN_EIO;
    close(fd);
    return 0;
}

int kn_audit_op(const char *dir, const char *actor, const char *op,
                struct json_t *fields)
{
    json_t *o = json_object();
    char t[48], *line;
    int rc;
    json_object_set_new(o, "time",
                        json_string(kn_time_jst(kn_now_ms(), t, sizeof(t))));
    json_object_set_new(o, "actor", json_string(actor));
    json_object_set_new(o, "op", json_string(op));
    if (fields != NULL) {
        json_object_update(o, fields);
        json_decref(fields);
    }
    line = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    rc = kn_audit_append(dir, "operations.jsonl", line);
    free(line);
    return rc;
}

char *kn_audit_cli_actor(void)
{
    const char *user = getenv("SUDO_USER");
    if (user == NULL || user[0] == '\0')
        user = getenv("USER");
    return user != NULL && user[0] != '\0' ? kn_xasprintf("kairanctl:%s", user)
                                           : kn_xstrdup("kairanctl");
}

int kn_audit_append(const char *dir, const char *file, const char *line)
{
    char *buf;
    size_t n;
    ssize_t w;
    int fd = open_log(dir, file);

    if (fd < 0)
        return KN_EIO;
    /* C1 and bidi controls as \u escapes (common/text.h): the same JSON
     * value, and nothing a terminal showing the log would obey. */
    buf = kn_text_json(line);
    n = strlen(buf);
    buf = kn_xrealloc(buf, n + 1);
    buf[n] = '\n';
    w = write(fd, buf, n + 1);
    free(buf);
    close(fd);
    return w == (ssize_t)(n + 1) ? 0 : KN_EIO;
}
