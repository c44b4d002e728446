/*
 * framing.c - the checks of a request's framing that Debian's http-parser
 * leaves out.  Its library is built with HTTP_PARSER_STRICT=0: a CR is
 * then taken as a line end whatever byte follows it (that byte is
 * swallowed), any two bytes are taken as the CRLF after chunk data, a
 * chunk extension may hold a bare LF or a control character, and
 * "Content-Length : 4" counts as a Content-Length.  Another parser (a
 * proxy in front) may frame such a request otherwise: one request for us,
 * two for it, or the reverse (request smuggling).  RFC 9112 says to refuse
 * them: a bare CR (2.2), whitespace before a header's colon (5.1), a line
 * starting with whitespace (obs-fold, 5.2; or before the first header,
 * 2.2), a control character in the request line (tab and form feed
 * count as part of the target), and a chunk not framed as 7.1 writes it.
 *
 * The check reads the bytes the parser has consumed, after it, in the same
 * order (parser.c): it never changes what the parser reads, it only says
 * "refuse".  What the parser already refuses (NUL and other controls in
 * the head, a bad Content-Length, Transfer-Encoding with Content-Length)
 * is left to it.
 */
#include "dispatcher/http/http_int.h"

#include <stdint.h>

enum {
    F_HEAD = 0, /* the request line and the header lines */
    F_LENGTH,   /* a Content-Length body or none: the parser counts */
    F_SIZE,     /* chunk-size */
    F_EXT,      /* chunk-ext, up to its CR */
    F_SIZE_LF,  /* the LF ending the chunk-size line */
    F_DATA,     /* chunk-data */
    F_DATA_CR,  /* the CRLF after it */
    F_DATA_LF,  /*  */
    F_TRAILER,  /* trailer lines after the last chunk */
    F_DONE,
};

static int hex(unsigned char b)
{
    if (b >= '0' && b <= '9')
        return b - '0';
    if (b >= 'a' && b <= 'f')
        return b - 'a' + 10;
    if (b >= 'A' && b <= 'F')
        return b - 'A' + 10;
    return -1;
}

/*
 * One byte of a head or trailer line.  Returns NULL, or why the request
 * is refused; *end is set to 1 at the empty line that ends the section.
 * first_is_line says whether the first line is a request line (the head)
 * or already a field line (the trailer).
 */
static const char *line_byte(struct frame *f, unsigned char b,
                             int first_is_line, int *end)
{
    if (f->cr) {
        f->cr = 0;
        if (b != '\n')
            return "a bare CR (RFC 9112 2.2)";
    } else if (b == '\r') {
        f->cr = 1;
        return NULL;
    }
    if (b == '\n') {
        if (f->col == 0) {
            /* An empty line: the end, or (before the request line) one
             * of the empty lines a server ignores (RFC 9112 2.2). */
            if (f->lines > 0 || !first_is_line)
                *end = 1;
            return NULL;
        }
        f->lines++;
        f->col = 0;
        f->colon = 0;
        return NULL;
    }
    f->col++;
    if (first_is_line && f->lines == 0) {
        /* The request line: a tab or form feed was taken inside the
         * target (where a front end may read it as a separator). */
        if (b < 0x20 || b == 0x7f)
            return "a control character in the request line (RFC 9112 3)";
    } else { /* a field line */
        if (f->col == 1 && (b == ' ' || b == '\t'))
            return "a header line starting with whitespace (obs-fold, "
                   "RFC 9112 5.2)";
        if (!f->colon) {
            if (b == ':')
                f->colon = 1;
            else if (b == ' ' || b == '\t')
                return "whitespace between a header name and its colon "
                       "(RFC 9112 5.1)";
        }
    }
    return NULL;
}

const char *kn__httpd_frame_check(struct conn *c, const char *data, size_t n)
{
    struct frame *f = &c->req.frame;
    const char *why = NULL;
    size_t i = 0;
    int end;

    while (i < n && why == NULL) {
        unsigned char b = (unsigned char)data[i];
        int v;
        switch (f->state) {
        case F_HEAD:
        case F_TRAILER:
            end = 0;
            why = line_byte(f, b, f->state == F_HEAD, &end);
            if (end && f->state == F_TRAILER)
                f->state = F_DONE;
            else if (end)
                /* The parser has read the whole head by now. */
                f->state = (c->parser.flags & F_CHUNKED) ? F_SIZE : F_LENGTH;
            i++;
            break;
        case F_LENGTH:
        case F_DONE:
            i = n;
            break;
        case F_SIZE:
            v = hex(b);
            if (v >= 0) {
                if (f->left > (UINT64_MAX >> 4))
                    why = "a chunk size that overflows";
                f->left = f->left * 16 + (uint64_t)v;
            } else if (b == ';' || b == ' ' || b == '\t') {
                f->state = F_EXT;
            } else if (b == '\r') {
                f->state = F_SIZE_LF;
            } else {
                why = "a malformed chunk size (RFC 9112 7.1)";
            }
            i++;
            break;
        case F_EXT:
            /* chunk-ext: tokens, quoted strings, BWS; never a control
             * character other than HTAB, never a bare LF. */
            if (b == '\r')
                f->state = F_SIZE_LF;
            else if ((b < 0x20 && b != '\t') || b == 0x7f)
                why = "a control character or a bare LF in a chunk "
                      "extension (RFC 9112 7.1.1)";
            i++;
            break;
        case F_SIZE_LF:
            if (b != '\n') {
                why = "a bare CR (RFC 9112 2.2)";
            } else if (f->left == 0) {
                f->state = F_TRAILER; /* the last chunk */
                f->lines = 0;
                f->col = 0;
            } else {
                f->state = F_DATA;
            }
            i++;
            break;
        case F_DATA: {
            size_t take = n - i;
            if ((uint64_t)take > f->left)
                take = (size_t)f->left;
            f->left -= take;
            i += take;
            if (f->left == 0)
                f->state = F_DATA_CR;
            break;
        }
        case F_DATA_CR:
        case F_DATA_LF:
            if (b != (f->state == F_DATA_CR ? '\r' : '\n'))
                why = "chunk data not followed by CRLF (RFC 9112 7.1)";
            f->state = f->state == F_DATA_CR ? F_DATA_LF : F_SIZE;
            i++;
            break;
        }
    }
    return why;
}
