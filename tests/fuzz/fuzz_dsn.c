/*
 * fuzz_dsn.c - libFuzzer target for the RFC 3464 parser (model/dsn.c):
 * the input is whatever anyone mails to a bounce address.
 *   - kn_dsn_parse never reads past the input (ASan) and always says
 *     something: a FAILED/DELAYED result has a Final-Recipient that is a
 *     normalised address (lower-case, no control character, a non-empty
 *     domain after its last '@' and something before it: a quoted local
 *     part, unquoted, may hold '@' too, as RFC 5321 allows and
 *     model/address.c accepts) and a status that is empty or d.d.d;
 *     AUTOREPLY/OTHER have a reason and no address;
 *   - the result does not depend on whether lines end in CRLF or LF;
 *   - the reason words exist for whatever status came out.
 */
#include "model/dsn.h"
#include "tests/fuzz/fuzz.h"

#include <ctype.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    return 0;
}

static void check(const struct kn_dsn *d)
{
    if (d->kind == KN_DSN_FAILED || d->kind == KN_DSN_DELAYED) {
        const char *at = strrchr(d->final_rcpt, '@');
        FZ_CHECK(at != NULL && at != d->final_rcpt && at[1] != '\0',
                 "not an address");
        for (const char *p = d->final_rcpt; *p; p++) {
            FZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f,
                     "control character in the address");
            FZ_CHECK(!isupper((unsigned char)*p), "not lower-case");
        }
        if (d->status[0]) {
            FZ_CHECK(strchr("245", d->status[0]) != NULL, "status class");
            FZ_CHECK(d->status[1] == '.', "status form");
        }
        FZ_CHECK(kn_dsn_reason(d->status, kn_dsn_carrier_domain(d->final_rcpt),
                               1) != NULL,
                 "no reason");
    } else {
        FZ_CHECK(d->why != NULL, "no reason for %s", kn_dsn_kind_name(d->kind));
        FZ_CHECK(d->final_rcpt[0] == '\0', "an address without a bounce");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kn_dsn d1, d2;
    char *lf;
    size_t n = 0;
    if (size > KN_DSN_MAX_INPUT)
        return 0;
    kn_dsn_parse((const char *)data, size, &d1);
    check(&d1);
    /* the same with every CR LF as LF */
    lf = kn_xmalloc(size + 1);
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\r' && i + 1 < size && data[i + 1] == '\n')
            continue;
        lf[n++] = (char)data[i];
    }
    kn_dsn_parse(lf, n, &d2);
    free(lf);
    /* kinds and addresses must agree when the input had no bare CR (a
     * CR not before LF stays in the LF copy and may change a value) */
    {
        int bare = 0;
        for (size_t i = 0; i < size; i++)
            if (data[i] == '\r' && (i + 1 >= size || data[i + 1] != '\n'))
                bare = 1;
        if (!bare) {
            FZ_CHECK(d1.kind == d2.kind, "CRLF %s, LF %s",
                     kn_dsn_kind_name(d1.kind), kn_dsn_kind_name(d2.kind));
            FZ_CHECK(strcmp(d1.final_rcpt, d2.final_rcpt) == 0,
                     "CRLF and LF differ in the address");
        }
    }
    return 0;
}
