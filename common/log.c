/*
 * log.c - JSON lines to stderr or a file.  Each call formats one whole line
 * and writes it with one write(2), so lines from several processes appending
 * to one file do not interleave.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "log.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kn.h"
#include "text.h"

enum kn_log_level kn_log_min = KN_LOG_INFO;
static int log_fd = 2;

static const char *level_name[] = {"debug", "info", "warn", "error"};

int kn_log_level_parse(const char *s, enum kn_log_level *out)
{
    for (size_t i = 0; i < KN_ARRAY_SIZE(level_name); i++) {
        if (strcmp(s, level_name[i]) == 0) {
            *out = (enum kn_log_level)i;
            return 0;
        }
    }
    return KN_EINVAL;
}

int kn_log_open(const char *path)
{
    int fd;
    if (path == NULL) {
        if (log_fd != 2)
            close(log_fd);
        log_fd = 2;
        return 0;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return KN_EIO;
    if (log_fd != 2)
        close(log_fd);
    log_fd = fd;
    return 0;
}

/*
 * Append s as a JSON string (with quotes) to the stream.  Bytes that are
 * not UTF-8 (a path, a provider's reply) are written as \\xNN: JSON must
 * be UTF-8, and the value must still be there for the reader.
 */
static void put_json_string(FILE *f, const char *raw)
{
    char *s = kn_text_utf8(raw, strlen(raw));
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
    free(s);
}

static void emit(enum kn_log_level lvl, const char *subsys, const char *msg,
                 va_list ap)
{
    char tbuf[48], *line = NULL, *safe;
    size_t len = 0;
    FILE *f = open_memstream(&line, &len);
    const char *k, *v;

    if (f == NULL)
        return;
    fprintf(f, "{\"time\":\"%s\",\"level\":\"%s\",\"subsys\":",
            kn_time_jst(kn_now_ms(), tbuf, sizeof(tbuf)), level_name[lvl]);
    put_json_string(f, subsys);
    fputs(",\"msg\":", f);
    put_json_string(f, msg);
    while ((k = va_arg(ap, const char *)) != NULL) {
        v = va_arg(ap, const char *);
        fputc(',', f);
        put_json_string(f, k);
        fputc(':', f);
        if (v == NULL)
            fputs("null", f);
        else
            put_json_string(f, v);
    }
    fputs("}\n", f);
    fclose(f);
    /* C1 controls, bidi controls and U+2028/U+2029 as \u escapes: the
     * same JSON value, and a terminal that shows the log (tail -f,
     * journalctl) obeys no CSI and turns no line around. */
    safe = kn_text_json(line);
    if (write(log_fd, safe, strlen(safe)) < 0) {
        /* Nowhere left to report a failing log; drop the line. */
    }
    free(safe);
    free(line);
}

void kn_log(enum kn_log_level lvl, const char *subsys, const char *msg, ...)
{
    va_list ap;
    if (!kn_log_enabled(lvl))
        return;
    va_start(ap, msg);
    emit(lvl, subsys, msg, ap);
    va_end(ap);
}

static void emit_plain(enum kn_log_level lvl, const char *subsys,
                       const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    emit(lvl, subsys, msg, ap);
    va_end(ap);
}

void kn_logf(enum kn_log_level lvl, const char *subsys, const char *fmt, ...)
{
    va_list ap;
    char *msg;
    if (!kn_log_enabled(lvl))
        return;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    if (msg == NULL)
        return;
    emit_plain(lvl, subsys, msg, NULL);
    free(msg);
}

char *kn_mask_address(const char *addr, char *buf, size_t len)
{
    const char *at = strrchr(addr, '@');
    if (len == 0)
        return buf;
    if (at != NULL && at != addr) {
        /* Keep the first octet of the local part only if it is ASCII, so a
         * multi-byte character is never cut in half. */
        unsigned char c = (unsigned char)addr[0];
        if (c < 0x80 && c != '"')
            snprintf(buf, len, "%c***%s", c, at);
        else
            snprintf(buf, len, "***%s", at);
    } else {
        size_t keep = strlen(addr) > 12 ? 4 : 0;
        while (keep > 0 && ((unsigned char)addr[keep] & 0xc0) == 0x80)
            keep--; /* never half a character */
        snprintf(buf, len, "%.*s***", (int)keep, addr);
    }
    return buf;
}

/* 1 if c may be part of an unquoted local part: atext, '.', or a byte
 * of a UTF-8 character (RFC 6531 local parts, which kn_addr_check takes). */
static int is_local_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c >= 0x80 ||
           (c != '\0' && strchr("!#$%&'*+/=?^_`{|}~.-", c) != NULL);
}

/* The end (one past the closing quote) of the quoted-string that opens at
 * t[i] == '"', or 0 when it is not closed; a backslash escapes the next
 * character. */
static size_t quoted_end(const char *t, size_t i, size_t n)
{
    for (size_t j = i + 1; j < n; j++) {
        if (t[j] == '\\' && j + 1 < n)
            j++;
        else if (t[j] == '"')
            return j + 1;
    }
    return 0;
}

/*
 * One pass from the left.  At each position, the local part that may
 * start there (a quoted-string, or a run of local-part characters) is
 * measured first; when an '@' follows it, it is written as its first
 * character (if printable ASCII) and "***@", else as it is.  So the
 * decision never depends on what was already written, and a local part
 * that the buffer cuts short is never written unmasked.
 */
char *kn_mask_text(const char *text, char *buf, size_t len)
{
    size_t o = 0, n = strlen(text), i = 0;
    if (len == 0)
        return buf;
    while (i < n && o + 1 < len) {
        unsigned char c = (unsigned char)text[i];
        size_t end = 0;
        if (c == '"')
            end = quoted_end(text, i, n);
        else if (is_local_char(c))
            for (end = i; end < n && is_local_char((unsigned char)text[end]);)
                end++;
        if (end > i && end < n && text[end] == '@') {
            unsigned char first =
                (unsigned char)(c == '"' ? text[i + 1] : text[i]);
            size_t need =
                (first > 0x20 && first < 0x7f && first != '"' && first != '\\')
                    ? 5
                    : 4;
            if (o + need >= len)
                break;
            if (need == 5)
                buf[o++] = (char)first;
            memcpy(buf + o, "***@", 4);
            o += 4;
            i = end + 1;
            continue;
        }
        if (c != '"' && end > i) {
            /* a run that is no local part: as it is, as far as it fits */
            while (i < end && o + 1 < len)
                buf[o++] = text[i++];
            continue;
        }
        buf[o++] = text[i++];
    }
    buf[o] = '\0';
    return buf;
}
