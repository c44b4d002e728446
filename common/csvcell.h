/*
 * csvcell.h - writing CSV cells for spreadsheets (Excel, LibreOffice), shared
 * by kairanctl's exports (cli/) and kairand's (GET .../recipients.csv): the
 * quoting, the guard against formulas, and the CP932 that Japanese Excel
 * reads without asking.  Reading CSV is common/csv.h.
 */
#ifndef KN_COMMON_CSVCELL_H
#define KN_COMMON_CSVCELL_H

#include <stddef.h>
#include <stdio.h>

/*
 * Writing, for Excel.  A cell that starts with '=', '+', '-', '@', TAB or
 * CR is a formula to a spreadsheet (OWASP "CSV injection"), and so, to
 * Japanese Excel, is one that starts with the full-width '＝', '＋', '－'
 * or '＠' (or U+2212 '−', which CP932 writes as '－'), also after leading
 * spaces (' ' or the full-width U+3000): such a cell is written with a
 * single quote in front, inside the quotes ("'=1+1", "' ＝1"), so that
 * Excel shows it as text.  So that this can be undone exactly, a cell
 * that is quotes followed by one of those ("'=x") gets one more.
 */

/* 1 if s gets the quote in front when written (see above). */
int kn_csv_needs_guard(const char *s);

/*
 * Write s as one cell and then ',' (or CRLF when last).  Quoted when it
 * holds ',', '"', a line break, an edge space, or gets the guard quote.
 */
void kn_csv_put_cell(FILE *f, const char *s, int last);

/*
 * What import makes of a cell (already trimmed): the guard quote that
 * kn_csv_put_cell() adds is taken off, that is one leading '\'' when the
 * rest would have needed it ("'=1+1" -> "=1+1", "''=x" -> "'=x"); any
 * other cell is returned as it is ("'abc", "'" unchanged).  Returns s or
 * s + 1.
 */
const char *kn_csv_unguard(const char *s);

/*
 * UTF-8 text s[0..n) in CP932 (Windows-31J), for a file that Japanese
 * Excel opens by double-click.  A character CP932 cannot hold (an emoji,
 * some CJK extensions) becomes "?"; invalid UTF-8 bytes become "?" too.
 * Returns a heap buffer (length in *outlen, NUL-terminated).
 */
char *kn_csv_cp932(const char *s, size_t n, size_t *outlen);

#endif
