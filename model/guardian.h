/*
 * guardian.h - the guardians of one child, in order, for the escalation
 * to the next guardian ("escalate_to": "next_guardian", docs/drills.md)
 * and for the report of who confirmed.
 *
 * A child's directory record (model/directory.h) holds its guardians in
 * order: guardian 0 is the record's own contacts (e, l, p), guardian k
 * (k >= 1) the k-th element of "g" (the import's further rows, then what
 * guardians registered themselves, appended by the expander).  These
 * numbers are what a personal confirmation link names
 * (kn_ack_token_guardian) and what bc:<id>:ack and bc:<id>:gs keep; a
 * report shows guardian k as its name if known, else "保護者<k+1>".
 *
 * bc:<id>:gs (a hash, next_guardian broadcasts only): per child, the
 * guardians its message went to and when, "<k>@<ms>" joined by ',' in the
 * order of the waves: "0@1764990000000,1@1764990600000".
 *
 * No I/O here.
 */
#ifndef KN_MODEL_GUARDIAN_H
#define KN_MODEL_GUARDIAN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define KN_GUARDIAN_MAX 32 /* guardians of one child looked at, at most */

/* Guardian k of the child's record c (borrowed), or NULL. */
json_t *kn_guardian_at(json_t *c, size_t k);

/* How many guardians c has (1 + the objects of "g"; 0 for NULL). */
size_t kn_guardian_count(json_t *c);

/*
 * 1 if guardian g is active (not "off") and has a usable contact (an
 * address with its blind index, not marked dead) on one of the channels
 * in chans (a bit per enum kn_channel: 1u << KN_CH_EMAIL ...).
 */
int kn_guardian_reachable(json_t *g, unsigned chans);

/* The first reachable guardian of c numbered from or more, or -1. */
int kn_guardian_next(json_t *c, size_t from, unsigned chans);

/*
 * The list of bc:<id>:gs (above) with guardian k sent at ms appended;
 * list NULL or "" is empty.  A guardian already in the list is not added
 * again (the copy is returned unchanged).  Heap string.
 */
char *kn_guardian_sent_add(const char *list, int k, int64_t ms);

/* 1 if guardian k is in the list. */
int kn_guardian_sent_has(const char *list, int k);

/*
 * Read entry i of the list: 0 with *k and *ms, or KN_EINVAL when there is
 * no entry i (or it is malformed).
 */
int kn_guardian_sent_at(const char *list, size_t i, int *k, int64_t *ms);

/*
 * How a report names guardian k whose name (already opened; NULL or ""
 * if unknown) is name: the name, else "保護者<k+1>".  Never an address.
 * Writes into out (cap bytes) and returns out.
 */
const char *kn_guardian_label(int k, const char *name, char *out, size_t cap);

#endif
