/*
 * file.c - a whole file into memory (file.h), through the capped buffer:
 * a roster that is too big is refused after max bytes, never read to the
 * end.
 */
#include "file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/kn.h"

int kn_file_read(const char *path, size_t max, char **out, size_t *len)
{
    int is_stdin = strcmp(path, "-") == 0, rc = 0, saved;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    struct kn_buf b;
    char chunk[65536];
    size_t r;

    *out = NULL;
    *len = 0;
    if (f == NULL)
        return KN_EIO;
    kn_buf_init(&b, max);
    for (;;) {
        r = fread(chunk, 1, sizeof(chunk), f);
        if (r == 0)
            break;
        rc = kn_buf_addn(&b, chunk, r);
        if (rc < 0)
            break;
    }
    if (rc == 0 && ferror(f))
        rc = KN_EIO;
    saved = errno;
    if (!is_stdin)
        fclose(f);
    errno = saved;
    if (rc < 0) {
        kn_buf_free(&b);
        return rc;
    }
    *out = kn_buf_take(&b, len);
    return 0;
}

int kn_file_read_secret(const char *path, char **out, const char **why)
{
    FILE *fp;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = -1;

    fp = fopen(path, "r");
    if (fp == NULL) {
        *why = strerror(errno);
        return -1;
    }
    errno = 0;
    n = getline(&line, &cap, fp);
    if (n < 0 && ferror(fp)) {
        *why = strerror(errno ? errno : EIO);
    } else {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        rc = 0;
        for (ssize_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)line[i];
            if (c < 0x20 || c == 0x7f)
                rc = -1;
        }
        if (n <= 0) {
            *why = "the first line is empty";
            rc = -1;
        } else if (rc < 0) {
            *why = "the first line contains a NUL or control character";
        }
    }
    fclose(fp);
    if (rc == 0)
        *out = kn_xstrdup(line);
    if (line != NULL)
        explicit_bzero(line, cap);
    free(line);
    return rc;
}
