/*
 * child.h - every child of a broadcast's audience and how it was reached:
 * the one rule shared by the drill report (cli/report.c) and the
 * recipients list of the HTTP API (dispatcher/http/recipients.c).
 *
 * A delivery state is a field of bc:<id>:r, "<channel>:<blind index>"
 * (one per address: the guardian of siblings gets one message), whose
 * value is "<code>|<recipient>|<ms>|<detail>"; the recipient is the child
 * whose job took the address first.  A child is
 *
 *   reached              one of its own states is delivered;
 *   reached_via_sibling  no state of its own, but one of its guardians'
 *                        addresses on the broadcast's channels was
 *                        delivered for a sibling (the same address got
 *                        the one message);
 *   not_reached          a state of its own or a contact on the
 *                        channels, and nothing delivered;
 *   no_contact           no contact on the broadcast's channels: the
 *                        first to phone.
 *
 * No I/O here: the callers read the records and the states.
 */
#ifndef KN_MODEL_CHILD_H
#define KN_MODEL_CHILD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum kn_child_state {
    KN_CHILD_NO_CONTACT,
    KN_CHILD_NOT_REACHED,
    KN_CHILD_VIA_SIBLING,
    KN_CHILD_REACHED,
};
#define KN_CHILD__STATES 4

/* "no_contact", "not_reached", "reached_via_sibling", "reached". */
const char *kn_child_state_name(enum kn_child_state s);

/*
 * The rule above from what the caller found: reached_ms the first
 * delivery (its own or the sibling's; 0 none), via_sibling that delivery
 * was a sibling's, no_contact the child has neither a state of its own
 * nor a contact on the channels.
 */
enum kn_child_state kn_child_classify(int64_t reached_ms, int via_sibling,
                                      int no_contact);

/* One state value "<code>|<recipient>|<ms>|<detail>" read in place. */
struct kn_child_st {
    char code;        /* q r d f x c b s */
    const char *rcpt; /* into the value, rcpt_len bytes (no NUL) */
    size_t rcpt_len;
    int64_t ms;         /* 0 if absent */
    const char *detail; /* into the value; "" if absent */
};

/* Parse v; returns 0, or KN_EINVAL for a value of another shape. */
int kn_child_st_parse(const char *v, struct kn_child_st *st);

/* 1 if st's recipient is id. */
int kn_child_st_is(const struct kn_child_st *st, const char *id);

/*
 * A LINE multicast that LINE accepted is recorded once
 * (docs/multicast-record.md): its members stay "q|<rcpt>|<gid>" and the
 * field "@<gid>" of the same hash holds "d|<ms>|<members>|<detail>" ("-"
 * while any other writer has touched the group).  kn_child_st_group: the
 * group id a member value names (into v), or NULL for any other value.
 * kn_child_st_resolve: what member value v stands for given its group's
 * record g (NULL: none): a new string "d|<rcpt>|<ms>|<detail>" when g says
 * delivered, else "q|<rcpt>"; NULL when v names no group.
 */
const char *kn_child_st_group(const char *v);
char *kn_child_st_resolve(const char *v, const char *g);

/* What one child's contacts found (kn_child_resolve). */
struct kn_child_seen {
    int own;            /* a state of its own among them */
    int64_t reached_ms; /* its first own delivery, else the sibling's */
    long via;           /* without own states: the contact whose sibling
                           delivery reached it first, else -1 */
};

/*
 * The rule above for the child id from the state values of its contacts
 * (states[i]: the value of contact i's field in bc:<id>:r, or NULL; n
 * the number of its contacts on the channels).  Fills seen and returns
 * the child's state.
 */
enum kn_child_state kn_child_resolve(const char *id, const char *const *states,
                                     size_t n, struct kn_child_seen *seen);

/* "queued", "retrying", "delivered", "failed", "expired", "cancelled",
 * "bounced", "suppressed" (issue 18), or "unknown". */
const char *kn_child_code_name(char code);

#define KN_CHILD_MAX_CONTACTS 32
#define KN_CHILD_FIELD_MAX    80

/* One contact of a child on a broadcast's channels. */
struct kn_child_contact {
    size_t guardian;     /* 0 the record's own, k the k-th of its "g" */
    const char *channel; /* "email", "line", "push" (static) */
    const char *sealed;  /* the address, sealed with purpose channel */
    char field[KN_CHILD_FIELD_MAX]; /* its field of bc:<id>:r */
};

/*
 * The contacts of a directory record c (model/directory.h: the record,
 * then its further guardians "g") on the channels of a broadcast
 * (channels: its "channels" field, "email,line"), as the expander takes
 * them: an address with its blind index, not marked dead.  Fills at most
 * max and returns how many (strings point into c).
 */
size_t kn_child_contacts(json_t *c, const char *channels,
                         struct kn_child_contact *out, size_t max);

/*
 * A phone number masked for the list of whom to phone: the last four
 * digits kept ("***5678").  Heap string.
 */
char *kn_child_mask_phone(const char *plain);

#endif
