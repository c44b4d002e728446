/*
 * csv.h - reading the CSV files that schools export from Excel: the
 * encoding (UTF-8 with or without BOM, or CP932, which Japanese Excel
 * writes by default) and the records (RFC 4180 with Excel's habits:
 * quoted fields with "" for a quote, commas and line breaks inside quotes,
 * CRLF, LF or CR line ends).
 *
 * Every record carries the physical line it starts on (1-based, counting
 * the line breaks inside quoted fields too), so that an error can name
 * FILE:LINE the way an editor shows it.  Nothing here knows what the
 * columns mean: queue/roster.c does.
 */
#ifndef KN_COMMON_CSV_H
#define KN_COMMON_CSV_H

#include <stddef.h>
#include <stdio.h>

#include "common/csvcell.h"

enum kn_csv_enc { KN_CSV_UTF8, KN_CSV_UTF8_BOM, KN_CSV_CP932 };

/* "UTF-8", "UTF-8 with BOM", "CP932". */
const char *kn_csv_enc_name(enum kn_csv_enc e);

/*
 * Decide the encoding of a file's bytes and return its text as UTF-8
 * without a BOM:
 *  1. EF BB BF first: UTF-8 with a BOM; the rest must be valid UTF-8;
 *  2. FF FE or FE FF first: UTF-16 (Excel's "Unicode text"): refused;
 *  3. valid UTF-8 (ASCII included): UTF-8;
 *  4. lines in two encodings (valid UTF-8 lines with Japanese in them
 *     next to lines that are not UTF-8) are refused, naming the first
 *     line of the smaller kind: read whole as CP932, the UTF-8 lines
 *     would be stored as mojibake;
 *  5. otherwise CP932, converted with iconv(3); a byte sequence CP932 does
 *     not define fails.
 * Line breaks are kept as they are, so line numbers do not change.
 * Returns 0 with *out (heap, NUL-terminated, *outlen bytes without the
 * NUL; it may hold NUL bytes from the file) and *enc; or KN_EUTF8 with a
 * reason naming the line in err ("line 3: neither UTF-8 nor CP932 ...")
 * and, when err_ja is not NULL, the same in Japanese for an office clerk
 * in err_ja ("3 行目：…").
 */
int kn_csv_decode(const char *buf, size_t len, char **out, size_t *outlen,
                  enum kn_csv_enc *enc, char *err, size_t errlen, char *err_ja,
                  size_t errlen_ja);

/* Reader state over a UTF-8 text (borrowed: it must outlive the reader). */
struct kn_csv {
    const char *_p, *_end;
    long _line; /* physical line _p is on */
};

/* One record.  Fields are heap copies, NUL-terminated, length in len[]. */
struct kn_csv_row {
    char **f;
    size_t *len;
    size_t n;
    long line;          /* physical line the record starts on */
    long end_line;      /* and ends on (> line if a quoted field has a break) */
    const char *err;    /* NULL, or a syntax problem (static text) */
    const char *err_ja; /* the same in Japanese (static text) */
    long err_line;      /* where err was found */
    int unclosed;       /* 1: a quote never closed swallowed the rest */
    size_t _cap;
};

void kn_csv_init(struct kn_csv *c, const char *text, size_t len);

/*
 * Read the next record into row (its previous fields are freed first).
 * Returns 1, or 0 at the end of the text.  Empty lines are skipped; a
 * record of empty fields only (",,,") is returned as it is.  A syntax
 * problem (a quote never closed, text after a closing quote) is reported
 * in row->err, and reading goes on with the next record.
 */
int kn_csv_next(struct kn_csv *c, struct kn_csv_row *row);

/* Free the fields of a row (the struct itself is the caller's). */
void kn_csv_row_free(struct kn_csv_row *row);

/* Writing, for Excel (the formula guard): common/csvcell.h. */

#endif
