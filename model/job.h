/*
 * job.h - the job record: one delivery job, as JSON in the field "j" of a
 * channel stream's entry (q:<channel>:<urgent|normal>), in the retry zset
 * and in the dead-letter stream.  Written by the expander
 * (dispatcher/expand.c), rewritten by the worker for a retry or a
 * fallback (dispatcher/worker.c), read by the worker and by Lua.
 *
 * Its keys are one or two letters so that a million queued jobs stay
 * small; this header is the one place that names them.  The Lua scripts
 * cannot include it and use the same letters:
 *   commit_page  sets r, a, i of a LINE multicast job (arrays);
 *   promote      reads q to find the stream a retry goes back to.
 * A change of a key here is a change of the stored format: jobs already
 * queued are written in the old one (and older kairand processes of the
 * same consumer group read the new one).
 *
 *   key   JSON    meaning
 *   b     string  the broadcast's name
 *   q     string  "<channel>:<urgent|normal>": the stream it belongs to
 *   key   string  its field in bc:<id>:r ("<channel>:<blind index>", or
 *                 "line:p<page>.<group>" for a LINE multicast job)
 *   r     string  the recipient id          } arrays of the same length
 *   a     string  its address, sealed       } for a LINE multicast job
 *   i     string  the address's blind index }
 *   n     int     attempts made so far
 *   t     int     when it was first queued (ms)
 *   x     int     when it expires (ms, the broadcast's expiry)
 *   k     string  push only: the token's platform, "fcm" or "apns"
 *   g     int     ack broadcasts: which guardian of the child the job
 *                 reaches (model/guardian.h), named in its personal link
 *   lg    string  the broadcast's translation the recipients read (a key
 *                 of its "translations"); absent: the Japanese text
 *   il    bool    true: inline recipients (no my-page link, issue 16)
 *   gr    bool    true: a LINE multicast whose members' records name the
 *                 job's key ("q|<rcpt>|<key>", docs/multicast-record.md),
 *                 so that its delivery may be recorded once, in the field
 *                 "@<key>" (the expander's jobs; not a retried copy)
 *   fb    array   policy preferred: the next channels' contacts, each
 *                 {"c": channel, "k": platform (push), "a": sealed,
 *                  "i": blind index}
 */
#ifndef KN_MODEL_JOB_H
#define KN_MODEL_JOB_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define KN_JOB_ENTRY_FIELD "j" /* the stream entry's field */
/* Recipients of one job at most: a LINE multicast has 500; more is no
 * job kairand writes, and the scripts that record a job's recipients
 * pass them through Lua's unpack (about 8,000 values at most). */
#define KN_JOB_MAX_RCPTS 1000

#define KN_JOB_BCAST      "b"
#define KN_JOB_QUEUE      "q"
#define KN_JOB_KEY        "key"
#define KN_JOB_RCPT       "r"
#define KN_JOB_ADDR       "a"
#define KN_JOB_INDEX      "i"
#define KN_JOB_ATTEMPTS   "n"
#define KN_JOB_FIRST      "t"
#define KN_JOB_EXPIRES    "x"
#define KN_JOB_PLATFORM   "k"
#define KN_JOB_FALLBACK   "fb"
#define KN_JOB_GUARDIAN   "g"
#define KN_JOB_LANG       "lg"
#define KN_JOB_FB_CHANNEL "c" /* in an entry of "fb"; also k, a, i */

/* true: the recipient is inline (the broadcast's own "recipients"), not
 * a child of the directory: its e-mail gets no my-page link (issue 16) */
#define KN_JOB_INLINE "il"

/* true: the members' records name this job's key (see the table above) */
#define KN_JOB_GROUPREC "gr"

/*
 * A new job without recipients: b, q, key, n = 0, t = first_ms,
 * x = expires_ms, k (if platform is not NULL) and fb (if fallback holds
 * entries; a reference is taken, fallback stays the caller's).  New
 * reference.
 */
json_t *kn_job_new(const char *bcast, const char *queue, const char *key,
                   int64_t first_ms, int64_t expires_ms, const char *platform,
                   json_t *fallback);

/* Set the one recipient of a single job: r, a, i. */
void kn_job_set_rcpt(json_t *job, const char *rcpt, const char *sealed,
                     const char *bi);

/* One entry of "fb" (platform may be NULL).  New reference. */
json_t *kn_job_fallback(const char *channel, const char *platform,
                        const char *sealed, const char *bi);

/* One member of a LINE multicast job: recipient, sealed address, index. */
struct kn_job_member {
    const char *rcpt, *sealed, *bi;
};

/*
 * A multicast job's JSON (the fields of kn_job_new without k and fb, "lg"
 * when lang is neither NULL nor "" (a translation, issue 16), "il": true
 * when inl (every member inline: no my-page foot), "gr": true when grec
 * (its members' records will name its key), and r, a, i as arrays
 * of the n members' values), written straight into one
 * buffer: what kn_job_new, three arrays and json_dumps give, without a
 * JSON tree of 1,500 strings per 500-member job.  Returns a heap string
 * (the caller frees it), or NULL if any string is not UTF-8 (JSON cannot
 * carry it; jansson would refuse it too).
 */
char *kn_job_group_json(const char *bcast, const char *queue, const char *key,
                        int64_t first_ms, int64_t expires_ms, const char *lang,
                        int inl, int grec, const struct kn_job_member *m,
                        size_t n);

/* A job read back.  Strings point into the JSON (valid while it lives);
 * the three arrays are the reader's: kn_job_rec_free, or take them. */
struct kn_job_rec {
    const char *bcast;
    const char *queue;    /* NULL if absent */
    const char *key;      /* NULL if absent */
    const char *platform; /* NULL if absent */
    const char *lang;     /* NULL if absent (the Japanese text) */
    int attempts;
    int64_t first_ms;   /* 0 if absent */
    int64_t expires_ms; /* 0 if absent */
    int inl;            /* KN_JOB_INLINE: an inline recipient's job */
    int grec;           /* KN_JOB_GROUPREC: recorded once when delivered */
    size_t n;           /* recipients: 1, or a multicast's count */
    const char **rcpts;
    const char **sealed;
    const char **bindex;
    json_t *fallback; /* borrowed; NULL if absent */
};

/*
 * Read a job.  Returns 0 and fills rec, or KN_EINVAL (rec then holds
 * nothing to free) when it is not what kairand writes:
 *  1. not an object, or no string "b", or no integer "n";
 *  2. r, a, i neither three strings nor three non-empty arrays of strings
 *     of the same length;
 *  3. more than KN_JOB_MAX_RCPTS recipients, or a recipient or index with
 *     a comma (the scripts take them comma-joined).
 */
int kn_job_parse(json_t *job, struct kn_job_rec *rec);

/*
 * Read a job from its text without a JSON tree (a LINE job is 75 kB of
 * 1,500 strings; jansson's tree of them was a sixth of kairand's CPU).
 * s holds n bytes and a NUL at s[n]; it is changed in place (strings
 * unescaped and NUL-terminated) and rec's strings point into it, so s
 * must live as long as rec is used.  Only the plain shape kairand and the
 * Lua scripts write is taken: an object of the keys above but "fb" and
 * "g" (the worker reads those from the tree), each once, with strings,
 * integers, booleans ("il", "gr") and arrays of strings, valid UTF-8.
 * Returns 0 and fills rec exactly as json_loadb + kn_job_parse would, or
 * KN_EAGAIN for anything else (then s is spoiled: read a copy of the text
 * with jansson and kn_job_parse, which decide whether it is a job).
 */
int kn_job_read_plain(char *s, size_t n, struct kn_job_rec *rec);

/* Free rec's arrays (not the strings: they are the JSON's). */
void kn_job_rec_free(struct kn_job_rec *rec);

#endif
