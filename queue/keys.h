/*
 * keys.h - the Redis key names that hold an outside value (DESIGN.md,
 * "Redis keys"), built in one place.
 *
 * Every key is <prefix><kind>:<part>[:<part>]...  A part that comes from
 * outside cannot reach another key:
 *   - a tenant is checked (kn_tenant_valid: letters, digits, '.', '_', '-');
 *   - a broadcast's name, a recipient id and a group name are encoded with
 *     kn_key_part (every byte but letters, digits, '.', '_', '-' becomes
 *     "%XX"), so none of them holds the ':' that separates parts: "bc:X"
 *     and "bc:X:aud" can never be two broadcasts, nor "rcpt:ume:x:r1"
 *     tenant "ume:x"'s recipient "r1".
 * Lua scripts that build a key from data they read (a group's members)
 * use key() and kp() of queue/lua/lib/keypart.lua, the same encoding.
 *
 * Each builder returns a heap string.
 */
#ifndef KN_QUEUE_KEYS_H
#define KN_QUEUE_KEYS_H

/* bc:<name><suffix>; suffix is "", ":r", ":aud", ":ack", ":m", ":fam",
 * ":gs" or ":seen". */
char *kn_key_bc(const char *prefix, const char *name, const char *suffix);

/* rcpt:<tenant>:<id>: a directory record. */
char *kn_key_rcpt(const char *prefix, const char *tenant, const char *id);

/* grp:<tenant>:<group>: a group's member ids. */
char *kn_key_grp(const char *prefix, const char *tenant, const char *group);

/* idem:<tenant>: hash, a producer's idempotency key -> broadcast name. */
char *kn_key_idem(const char *prefix, const char *tenant);

/* tbcs:<tenant>: zset, the tenant's broadcasts by created time (ms), as
 * bcs for every tenant; written by the submit script since 0.5.0, read by
 * the my page (a prefecture's many schools share bcs). */
char *kn_key_tbcs(const char *prefix, const char *tenant);

/* cats:<tenant>: hash, the tenant's own categories: name -> flags
 * ("emergency" or ""); kairanctl category add|remove keep it. */
char *kn_key_cats(const char *prefix, const char *tenant);

/* supp:<tenant>: hash, the tenant's suppressed e-mail addresses: blind
 * index -> "<h|s>|<ms>|<detail>|<rcpt>|<bcast>|<sealed address>" (issue 18;
 * queue/lua/bounce.lua).  soft:<tenant>: hash, blind index -> the soft
 * bounces within the window, "<ms>/<bcast>,...". */
char *kn_key_supp(const char *prefix, const char *tenant);
char *kn_key_soft(const char *prefix, const char *tenant);

/* bref:<ref>: hash, what a VERP bounce reference names (model/dsn.h
 * kn_bounce_ref_valid: the ref is checked, so it is used as it is). */
char *kn_key_bref(const char *prefix, const char *ref);

/* groups:<tenant>: set of the tenant's group names (the import adds). */
char *kn_key_groups(const char *prefix, const char *tenant);

/* rcpts:<tenant>: set of the tenant's recipient ids. */
char *kn_key_rcpts(const char *prefix, const char *tenant);

/* tpl:<tenant>: hash, the console's message templates: name -> JSON
 * (dispatcher/http/templates.c). */
char *kn_key_templates(const char *prefix, const char *tenant);

/*
 * Staff accounts and sessions (queue/staff.h says what each holds):
 *   staff:<tenant>:<login>          hash, one account
 *   staffs:<tenant>                 set of the tenant's logins
 *   sess:<sha256 hex of the id>     hash, one session (the id itself is
 *                                   never stored)
 *   stsess:<tenant>:<login>         set of the account's session hashes
 *   lfail:<tenant>:<login>:<addr>   failures of one login from one address
 *                                   (an IPv6 one's /64, "2001:db8::/64")
 *   lspread:<tenant>:<login>        failures of one login from anywhere
 *   luntr:<tenant>:<login>          failures of one login from clients
 *                                   without its device cookie
 *                                   (model/device.h), from anywhere
 *   ldev:<tenant>:<login>:<nonce>   failures of one device cookie of the
 *                                   login (its nonce); at
 *                                   KN_DEVICE_LOCK_FAILS it is locked
 *   totpuse:<tenant>:<login>:<step> a TOTP step already accepted
 *   totpfail:<tenant>:<login>       wrong TOTP codes of one login
 * The login and the address are encoded parts: a login presented at the
 * login form that does not exist still gets throttled, under its own key.
 * Each of these counters is first written only with a password hash (after
 * it; luntr as it starts), which the hash pool bounds, and expires
 * (KN_LOGIN_LOCK_MS; ldev at its cookie's expiry): made-up logins cannot
 * grow them without bound.
 */
char *kn_key_staff(const char *prefix, const char *tenant, const char *login);
char *kn_key_staffs(const char *prefix, const char *tenant);
char *kn_key_session(const char *prefix, const char *hash);
/* sesspw:<session hash>: the session's tries of its current password at a
 * password change (a string, INCR), apart from the session's hash so that
 * ending the session (DEL) does not set it back (KN_SESSION_MAX_MS). */
char *kn_key_session_pwtry(const char *prefix, const char *hash);
char *kn_key_staff_sessions(const char *prefix, const char *tenant,
                            const char *login);
char *kn_key_login_fail(const char *prefix, const char *tenant,
                        const char *login, const char *addr);
char *kn_key_login_spread(const char *prefix, const char *tenant,
                          const char *login);
char *kn_key_login_untrusted(const char *prefix, const char *tenant,
                             const char *login);
char *kn_key_device_fail(const char *prefix, const char *tenant,
                         const char *login, const char *nonce);
char *kn_key_totp_used(const char *prefix, const char *tenant,
                       const char *login, long long step);
char *kn_key_totp_fail(const char *prefix, const char *tenant,
                       const char *login);

/*
 * Registration sheets and what guardians register themselves (issue 15),
 * records of their own: an import never writes them.
 *   sheet:<ID>         hash, one printed sheet: t (tenant), r (recipient),
 *                      h (keyed hash of the passcode), max, used,
 *                      issued_ms.  ID is KN_REG_ALPHABET only, encoded
 *                      anyway.
 *   reg:<tenant>:<id>  hash, the recipient's registrations: sheet (the
 *                      live sheet's ID), and what guardians add
 *   sheets:<tenant>    set of the tenant's sheet IDs (tenant close)
 */
char *kn_key_sheet(const char *prefix, const char *sheet_id);
char *kn_key_reg(const char *prefix, const char *tenant, const char *id);
char *kn_key_sheets(const char *prefix, const char *tenant);

/*
 * The registration page's steps (dispatcher/http/register.c):
 *   rfail:<ID>:<addr>  failures of one sheet ID from one address (an ID
 *                      that does not exist is throttled the same way)
 *   rtk:<hash>         a registration begun with a right passcode (the
 *                      ticket itself is never stored)
 *   rver:<hash>        an address waiting for its verification link
 *   regd:<tenant>      set of the children with a registered guardian
 *   rapp:<hash>        a code for the school app (10 minutes, single use)
 *   rdev:<hash>        a registered device: its credential's hash
 *   rdevs:<tenant>     set of the tenant's device credential hashes
 *   rline:<index>      a LINE link code (keyed hash; 10 minutes, single
 *                      use): the sign-up it links a LINE user to
 *   rlfail:<index>     wrong link codes of one LINE user (the blind index
 *                      of the user id) in 10 minutes; rlfail:all: of all
 *   rma:<index>        verification mails to one address (the blind index
 *                      of the address) in the hour, whatever the sheet
 *   rst:<ID>           sign-ups started with one sheet in the hour
 */
char *kn_key_reg_fail(const char *prefix, const char *sheet_id,
                      const char *addr);
char *kn_key_reg_ticket(const char *prefix, const char *hash);
char *kn_key_reg_verify(const char *prefix, const char *hash);
char *kn_key_regd(const char *prefix, const char *tenant);
char *kn_key_reg_app(const char *prefix, const char *hash);
char *kn_key_reg_device(const char *prefix, const char *hash);
char *kn_key_reg_devices(const char *prefix, const char *tenant);
char *kn_key_reg_line(const char *prefix, const char *hash);
char *kn_key_reg_line_fail(const char *prefix, const char *who);
char *kn_key_reg_mails(const char *prefix, const char *addr_index);
char *kn_key_reg_starts(const char *prefix, const char *sheet_id);

/*
 * My page (dispatcher/http/mypage.c, docs/mypage.md).  Each is named by a
 * keyed hash (kn_blind_index, purpose "mypage") of what it counts, never
 * by an outside value, and expires by itself (nothing to erase at tenant
 * close):
 *   mpc:<h>  a guardian's one-time code: its keyed hash (10 minutes)
 *   mpf:<h>  wrong codes and passcodes of that guardian (10 minutes; 5
 *            void the code)
 *   mpn:<h>  codes sent to that guardian (1 hour; 5 at most)
 *   mpl:<h>  "send me my link" requests of one address, one sheet ID or
 *            one client address (1 hour; 3, 5 and 20 at most)
 * kind is one of "mpc", "mpf", "mpn", "mpl"; hash 32 hex digits.
 */
char *kn_key_mypage(const char *prefix, const char *kind, const char *hash);

/*
 * cred:<provider>:<account>: hash, a provider credential shared by every
 * kairand (model/cred.h; dispatcher/cred.c): APNs' provider token is
 * cred:apns:<team id>.<key id>.<16 hex of the key's SHA-256>.  Both parts
 * encoded; expires by itself (cred_offer.lua sets its lifetime).
 */
char *kn_key_cred(const char *prefix, const char *provider,
                  const char *account);

#endif
