/*
 * file.c - a whole file into memory (file.h), through the capped buffer:
 * a roster that is too big is refused after max bytes, never read to the
 * end.
 */
#include "file.h"

#include <errno.h>
#include <stdio.h>
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
