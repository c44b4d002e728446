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

#include "common/kn.h"

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

int kn_audit_append(const char *dir, const char *file, const char *line)
{
    char *path, *buf;
    size_t n = strlen(line);
    ssize_t w;
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
    if (fd < 0)
        return KN_EIO;
    buf = kn_xmalloc(n + 1);
    memcpy(buf, line, n);
    buf[n] = '\n';
    w = write(fd, buf, n + 1);
    free(buf);
    close(fd);
    return w == (ssize_t)(n + 1) ? 0 : KN_EIO;
}
