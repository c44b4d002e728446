/*
 * test_config.c - config/config.c: defaults, the example file, error
 * messages with file:line, environment overrides, secret files, the
 * cross-key checks and redis url parsing.
 *
 * Every test writes its config files into one mkdtemp() directory that the
 * group teardown removes.  Errors are captured with open_memstream() and
 * compared in full, so a changed message or line number shows up here.
 * The KAIRAN_* variables are cleared first, so the caller's environment
 * cannot change the results.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/kn.h"
#include "config/config.h"

#ifndef KN_SRCDIR
#define KN_SRCDIR "."
#endif
#define EXAMPLE KN_SRCDIR "/config/kairan.conf.example"

static char tmpdir[] = "/tmp/kn-test-config-XXXXXX";

static const char *const env_vars[] = {
    "KAIRAN_REDIS_URL",
    "KAIRAN_SMTP_PASSWORD",
    "KAIRAN_OUTBOX_DIR",
    "KAIRAN_KEY_FILE",
};

/* ---- helpers ------------------------------------------------------------ */

static void clear_env(void)
{
    for (size_t i = 0; i < KN_ARRAY_SIZE(env_vars); i++)
        unsetenv(env_vars[i]);
}

static int group_setup(void **state)
{
    clear_env();
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    if (d != NULL) {
        while ((e = readdir(d)) != NULL) {
            char *path;
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            path = kn_xasprintf("%s/%s", tmpdir, e->d_name);
            unlink(path);
            free(path);
        }
        closedir(d);
    }
    clear_env();
    return rmdir(tmpdir);
}

/* Write content to tmpdir/name; returns the path (caller frees). */
static char *write_file(const char *name, const char *content)
{
    char *path = kn_xasprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(content, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

/*
 * Load path into cfg with errors captured; returns the load's result and
 * sets *errs to the text written (caller frees).
 */
static int load(struct kn_config *cfg, const char *path, char **errs)
{
    size_t len;
    FILE *f = open_memstream(errs, &len);
    int rc;
    assert_non_null(f);
    rc = kn_config_load(cfg, path, f);
    fclose(f);
    return rc;
}

/* Load a config made of content; returns the result, *errs, *path. */
static int load_text(struct kn_config *cfg, const char *content, char **errs,
                     char **path)
{
    *path = write_file("kairan.conf", content);
    return load(cfg, *path, errs);
}

static int check(const struct kn_config *cfg, char **errs)
{
    size_t len;
    FILE *f = open_memstream(errs, &len);
    int rc;
    assert_non_null(f);
    rc = kn_config_check(cfg, f);
    fclose(f);
    return rc;
}

/* Assert that errs is exactly the lines given (printf format). */
__attribute__((format(printf, 2, 3))) static void
assert_errors(const char *errs, const char *fmt, ...)
{
    va_list ap;
    char *want;
    va_start(ap, fmt);
    assert_int_not_equal(vasprintf(&want, fmt, ap), -1);
    va_end(ap);
    assert_string_equal(errs, want);
    free(want);
}

/* A config that must load; returns its path (caller frees). */
static char *load_ok(struct kn_config *cfg, const char *content)
{
    char *errs, *path;
    int rc = load_text(cfg, content, &errs, &path);
    assert_string_equal(errs, "");
    assert_int_equal(rc, 0);
    free(errs);
    return path;
}

static void assert_defaults(const struct kn_config *c)
{
    assert_string_equal(c->redis_url, "redis://127.0.0.1:6379/0");
    assert_null(c->redis_password_file);
    assert_null(c->redis_password);
    assert_string_equal(c->redis_prefix, "kairan:");
    assert_int_equal(c->redis_timeout_ms, 5000);

    assert_int_equal(c->max_attempts, 8);
    assert_int_equal(c->retry_base_ms, 1000);
    assert_int_equal(c->retry_cap_ms, 300000);
    assert_int_equal(c->claim_idle_ms, 120000);
    assert_int_equal(c->max_depth, 200000);
    assert_int_equal(c->block_ms, 500);

    assert_int_equal(c->drain_ms, 10000);
    assert_int_equal(c->default_ttl_ms, 24 * 3600 * 1000LL);
    assert_int_equal(c->expand_page, 1000);
    assert_int_equal(c->max_subject, 1000);
    assert_int_equal(c->max_body, 100000);
    assert_int_equal(c->max_recipients, 100000);
    assert_null(c->consumer);
    assert_string_equal(c->log_level, "info");
    assert_null(c->log_file);

    assert_string_equal(c->route_email, "smtp");
    assert_string_equal(c->route_line, "line");
    assert_string_equal(c->route_push, "push");

    assert_string_equal(c->smtp_url, "smtp://127.0.0.1:25");
    assert_int_equal(c->smtp_tls, KN_TLS_STARTTLS);
    assert_null(c->smtp_ca_file);
    assert_null(c->smtp_username);
    assert_null(c->smtp_password);
    assert_null(c->smtp_password_file);
    assert_int_equal(c->smtp_connections, 10);
    assert_string_equal(c->smtp_from, "kairan <noreply@localhost>");
    assert_null(c->smtp_reply_to);
    assert_null(c->smtp_helo);
    assert_int_equal(c->smtp_timeout_ms, 60000);

    assert_string_equal(c->outbox_dir, "outbox");
    assert_int_equal(c->outbox_slots, 64);
    assert_string_equal(c->key_file, "/etc/kairan/key");
}

/* ---- defaults and the example ------------------------------------------- */

static void test_defaults(void **state)
{
    struct kn_config cfg;
    char *errs;
    assert_int_equal(load(&cfg, NULL, &errs), 0);
    assert_string_equal(errs, "");
    free(errs);
    assert_null(cfg.path);
    assert_defaults(&cfg);
    assert_int_equal(check(&cfg, &errs), 0);
    assert_string_equal(errs, "");
    free(errs);
    kn_config_free(&cfg);
    kn_config_free(&cfg); /* zeroed: a second free is harmless */
}

static void test_example_loads(void **state)
{
    struct kn_config cfg;
    char *errs;
    assert_int_equal(load(&cfg, EXAMPLE, &errs), 0);
    assert_string_equal(errs, "");
    free(errs);
    assert_string_equal(cfg.path, EXAMPLE);
    /* The example shows the defaults: loading it changes nothing. */
    assert_defaults(&cfg);
    assert_int_equal(check(&cfg, &errs), 0);
    assert_string_equal(errs, "");
    free(errs);
    kn_config_free(&cfg);
}

/* Every key appears in the example, set or commented out, in its section. */
static void test_example_documents_every_key(void **state)
{
    /* Every key of the loader's own table must be in the example. */
    char *all[256];
    size_t nall = 0;
    const char *sec, *nm;
    while ((nm = kn_config_key(nall, &sec)) != NULL && nall < 256) {
        all[nall] = kn_xasprintf("%s.%s", sec, nm);
        nall++;
    }
    FILE *f = fopen(EXAMPLE, "r");
    char *line = NULL, section[64] = "", *seen = kn_xstrdup(" ");
    size_t cap = 0;

    assert_non_null(f);
    while (getline(&line, &cap, f) >= 0) {
        char name[64], *p = line, *s;
        if (sscanf(line, "[%63[^]]]", section) == 1)
            continue;
        if (*p == '#')
            p++;
        if (*p == ' ')
            p++;
        if (sscanf(p, "%63[a-z0-9_] =", name) == 1 && strstr(p, " = ")) {
            s = kn_xasprintf("%s%s.%s ", seen, section, name);
            free(seen);
            seen = s;
        }
    }
    free(line);
    fclose(f);
    assert_true(nall > 40);
    for (size_t i = 0; i < nall; i++) {
        char *want = kn_xasprintf(" %s ", all[i]);
        if (strstr(seen, want) == NULL)
            fail_msg("%s is not in the example", all[i]);
        free(want);
        free(all[i]);
    }
    free(seen);
}

/* ---- errors ------------------------------------------------------------- */

static void test_errors_are_collected(void **state)
{
    struct kn_config cfg;
    char long_line[301], *text, *errs, *path;

    memset(long_line, 'x', 300);
    memcpy(long_line, "helo = ", 7);
    long_line[300] = '\0';
    text = kn_xasprintf("[smtp]\n"                          /* 1 */
                        "conections = 5\n"                  /* 2 */
                        "connections = abc\n"               /* 3 */
                        "tls = ssl\n"                       /* 4 */
                        "%s\n"                              /* 5 */
                        "[queue]\n"                         /* 6 */
                        "block_ms = 5\n"                    /* 7 */
                        "claim_idle_ms = 3 minutes\n"       /* 8 */
                        "[mail]\n"                          /* 9 */
                        "from = reported once, above\n"     /* 10 */
                        "[redis]\n"                         /* 11 */
                        "url = redis://:hunter2@db:99999\n" /* 12 */
                        "timeout_ms = 1s\n"                 /* 13 */
                        "timeout_ms = 2s\n"                 /* 14 */
                        "not a directive\n"                 /* 15 */
                        "max_attempts = 3\n",               /* 16 */
                        long_line);
    assert_int_equal(load_text(&cfg, text, &errs, &path), KN_ECONFIG);
    assert_errors(
        errs,
        "%1$s:2: unknown key 'conections' in [smtp]; known keys: url, tls, "
        "ca_file, username, password, password_file, connections, from, "
        "reply_to, helo, timeout_ms, greeting_timeout_ms, mail_timeout_ms, "
        "rcpt_timeout_ms, data_init_timeout_ms, data_xfer_timeout_ms, "
        "data_done_timeout_ms, bounce_local, bounce_domain\n"
        "%1$s:3: smtp.connections = 'abc': expected an integer from 1 to "
        "1000\n"
        "%1$s:4: smtp.tls = 'ssl': expected one of starttls, implicit, none\n"
        "%1$s:5: line longer than 199 characters\n"
        "%1$s:7: queue.block_ms = '5': expected a duration from 10ms to 5s "
        "(a number of milliseconds, or with a unit: 500ms, 30s, 10m, 24h, "
        "1d)\n"
        "%1$s:8: queue.claim_idle_ms = '3 minutes': expected a duration from "
        "1s to 1d (a number of milliseconds, or with a unit: 500ms, 30s, "
        "10m, 24h, 1d)\n"
        "%1$s:9: unknown section [mail]; known sections: redis, queue, "
        "dispatcher, routes, smtp, outbox, security, line, fcm, apns, "
        "sendgrid, failover, http, registration, retention\n"
        "%1$s:12: redis.url = 'redis://:***@db:99999': the port must be a "
        "number from 1 to 65535\n"
        "%1$s:14: redis.timeout_ms is already set on line 13\n"
        "%1$s:15: expected 'key = value', '[section]' or a comment\n"
        "%1$s:16: unknown key 'max_attempts' in [redis]; known keys: url, "
        "password_file, prefix, timeout_ms, sentinels, master_name, "
        "sentinel_password_file, sentinel_allow_no_password, wait_replicas, "
        "wait_timeout_ms\n",
        path);
    assert_null(strstr(errs, "hunter2"));
    /* A failed load leaves nothing behind. */
    assert_null(cfg.path);
    assert_null(cfg.redis_url);
    free(errs);
    free(path);
    free(text);
    kn_config_free(&cfg);
}

static void test_syntax_errors(void **state)
{
    struct kn_config cfg;
    char *errs, *path;
    assert_int_equal(load_text(&cfg,
                               "url = redis://x\n" /* 1 */
                               "[smtp\n"           /* 2 */
                               "[smtp] helo = x\n" /* 3 */
                               "[smtp] ; mail\n"   /* 4 */
                               "a b = 1\n"         /* 5 */
                               "= 3\n"             /* 6 */
                               "from =\n"          /* 7 */
                               "helo = a\001b\n"   /* 8 */
                               "username = ok\n",  /* 9 */
                               &errs, &path),
                     KN_ECONFIG);
    assert_errors(
        errs,
        "%1$s:1: key 'url' comes before any [section]\n"
        "%1$s:2: '[' without a closing ']'\n"
        "%1$s:3: unexpected text after ']'\n"
        "%1$s:5: 'a b' is not a key name (letters, digits and '_')\n"
        "%1$s:6: a key name is missing before '='\n"
        "%1$s:7: smtp.from = '': expected a non-empty value\n"
        "%1$s:8: smtp.helo = 'a?b': control characters are not allowed\n",
        path);
    free(errs);
    free(path);
}

static void test_missing_file(void **state)
{
    struct kn_config cfg;
    char *errs, *path = kn_xasprintf("%s/no-such.conf", tmpdir);
    assert_int_equal(load(&cfg, path, &errs), KN_ECONFIG);
    assert_errors(errs,
                  "%s: cannot open the configuration: No such file or "
                  "directory\n",
                  path);
    free(errs);
    /* err may be NULL: the problems are only counted. */
    assert_int_equal(kn_config_load(&cfg, path, NULL), KN_ECONFIG);
    free(path);
}

/* 199 characters load whole; 200 are refused, not cut. */
static void test_line_length_limit(void **state)
{
    struct kn_config cfg;
    char line[201], *text, *errs, *path;

    memset(line, 'a', sizeof(line));
    memcpy(line, "from = ", 7);
    memcpy(line + 199 - 12, "@example.jp", 11);
    line[198] = 'p';
    line[199] = '\0';
    text = kn_xasprintf("[smtp]\n%s\n", line);
    free(load_ok(&cfg, text));
    assert_int_equal(strlen(cfg.smtp_from), 199 - 7);
    assert_non_null(strstr(cfg.smtp_from, "@example.jp"));
    kn_config_free(&cfg);
    free(text);

    line[199] = 'p';
    line[200] = '\0';
    text = kn_xasprintf("[smtp]\n%s\r\n", line);
    assert_int_equal(load_text(&cfg, text, &errs, &path), KN_ECONFIG);
    assert_errors(errs, "%s:2: line longer than 199 characters\n", path);
    free(errs);
    free(path);
    free(text);
}

/*
 * Debian's inih cuts values at " ;" (inline comments); we keep the whole
 * value.  A trailing comment on a typed key is therefore an error, never
 * silently dropped.
 */
static void test_semicolon_is_part_of_the_value(void **state)
{
    struct kn_config cfg;
    char *errs, *path;

    free(load_ok(&cfg, "[smtp]\n"
                       "username = u\n"
                       "password = abc ;def\n"
                       "[redis]\n"
                       "prefix = k ;x # y:\n"));
    assert_string_equal(cfg.smtp_password, "abc ;def");
    assert_string_equal(cfg.redis_prefix, "k ;x # y:");
    kn_config_free(&cfg);

    assert_int_equal(
        load_text(&cfg, "[smtp]\nconnections = 10 ; ten\n", &errs, &path),
        KN_ECONFIG);
    assert_errors(errs,
                  "%s:2: smtp.connections = '10 ; ten': expected an integer "
                  "from 1 to 1000\n",
                  path);
    free(errs);
    free(path);
}

/*
 * Indented keys are keys, not continuations of the previous value (inih's
 * multi-line mode); CRLF line ends, a BOM and "key: value" are accepted.
 */
static void test_indent_crlf_bom(void **state)
{
    struct kn_config cfg;
    free(load_ok(&cfg, "\xEF\xBB\xBF[smtp]\r\n"
                       "  connections = 20\r\n"
                       "  helo = mx.example.jp\r\n"
                       "\tfrom: Sakura <office@school.example.jp>\r\n"
                       "\r\n"
                       "  # comment\r\n"
                       "[routes]\n"
                       "email = OUTBOX\n"));
    assert_int_equal(cfg.smtp_connections, 20);
    assert_string_equal(cfg.smtp_helo, "mx.example.jp");
    assert_string_equal(cfg.smtp_from, "Sakura <office@school.example.jp>");
    assert_string_equal(cfg.route_email, "outbox");
    kn_config_free(&cfg);
}

/* A bare number is milliseconds only for *_ms keys: default_ttl = 90
 * (90 ms?) is refused with what to write; kn_duration_parse_unit. */
static void test_duration_needs_unit(void **state)
{
    struct kn_config cfg;
    char *errs, *path;
    int64_t ms;
    (void)state;
    assert_int_equal(
        load_text(&cfg, "[dispatcher]\ndefault_ttl = 90\n", &errs, &path),
        KN_ECONFIG);
    assert_non_null(strstr(errs, "with its unit"));
    assert_non_null(strstr(errs, "write 24h, not 24"));
    kn_config_free(&cfg);
    free(errs);
    free(path);
    assert_int_equal(kn_duration_parse_unit("90", &ms), KN_EINVAL);
    assert_int_equal(kn_duration_parse_unit("", &ms), KN_EINVAL);
    assert_int_equal(kn_duration_parse_unit("d", &ms), KN_EINVAL);
    assert_int_equal(kn_duration_parse_unit("90x", &ms), KN_EINVAL);
    assert_int_equal(kn_duration_parse_unit("90d", &ms), 0);
    assert_int_equal(ms, 90 * 86400000LL);
    assert_int_equal(kn_duration_parse_unit("500ms", &ms), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(kn_duration_parse_unit("0", &ms), 0);
    assert_int_equal(ms, 0);
}

/* http.listen: --check accepts exactly what the start binds. */
static void test_listen(void **state)
{
    static const struct {
        const char *v;
        int ok;
    } cases[] = {
        {"127.0.0.1:8025", 1}, {"0.0.0.0:1", 1},      {"[::1]:8025", 1},
        {"[::]:65535", 1},     {"localhost:8025", 1}, {"127.0.0.1:99999", 0},
        {"127.0.0.1:0", 0},    {"127.0.0.1:", 0},     {"127.0.0.1", 0},
        {"127.0.0.1:+80", 0},  {"127.0.0.1:80x", 0},  {"::1:8025", 0},
        {"[::1]8025", 0},      {"example.jp:80", 0},  {"256.0.0.1:80", 0},
        {"[127.0.0.1]:80", 0}, {":8025", 0},
    };
    (void)state;
    for (size_t i = 0; i < KN_ARRAY_SIZE(cases); i++) {
        struct kn_config cfg;
        struct sockaddr_storage a;
        char *text, *errs, *path;
        int rc;
        text = kn_xasprintf("[http]\nlisten = %s\n", cases[i].v);
        rc = load_text(&cfg, text, &errs, &path);
        if (cases[i].ok != (rc == 0))
            fail_msg("listen = %s: %s", cases[i].v, errs);
        assert_int_equal(kn_config_listen_parse(cases[i].v, &a) == 0,
                         cases[i].ok);
        if (!cases[i].ok)
            assert_non_null(strstr(errs, "port from 1 to 65535"));
        kn_config_free(&cfg);
        free(text);
        free(errs);
        free(path);
    }
}

/* http.public_url: the base of links sent to guardians. */
static void test_public_url(void **state)
{
    static const struct {
        const char *v;
        const char *why; /* NULL: accepted */
    } cases[] = {
        {"https://kairan.school.example.jp", NULL},
        {"http://127.0.0.1:8025", NULL},
        {"https://[::1]:8443/kairan", NULL},
        {"HTTPS://Kairan.Example.JP/base", NULL},
        {"javascript:alert(1)//", "absolute http"},
        {"data:text/html,x", "absolute http"},
        {"//evil.example", "absolute http"},
        {"ftp://x.example", "absolute http"},
        {"https://", "no host"},
        {"https:///path", "no host"},
        {"https://user:pw@x.example", "user:password@"},
        {"https://x.example@evil.example", "user:password@"},
        {"https://x.example/#frag", "fragment"},
        {"https://x.example/?a=1", "query"},
        {"https://x.example/a b", "spaces"},
        {"https://x.example/\x1b[2J", "control"},
        {"https://x.exa\"mple", "host"},
        {"https://x.example/a%2Cb", NULL},
        {"https://例え.jp", "non-ASCII"},
    };
    (void)state;
    for (size_t i = 0; i < KN_ARRAY_SIZE(cases); i++) {
        struct kn_config cfg;
        char *text, *errs, *path;
        int rc;
        text = kn_xasprintf("[http]\npublic_url = %s\n", cases[i].v);
        rc = load_text(&cfg, text, &errs, &path);
        if (cases[i].why == NULL && rc != 0)
            fail_msg("public_url = %s refused: %s", cases[i].v, errs);
        if (cases[i].why != NULL && (rc == 0 || !strstr(errs, cases[i].why)))
            fail_msg("public_url = %s: want \"%s\", got: %s", cases[i].v,
                     cases[i].why, errs);
        kn_config_free(&cfg);
        free(text);
        free(errs);
        free(path);
    }
}

static void test_durations(void **state)
{
    static const struct {
        const char *text;
        int64_t drain, ttl;
    } cases[] = {
        {"500", 500, -1},         {"500ms", 500, -1},
        {"90", 90, -1},           {"30s", 30000, -1},
        {"10m", 600000, 600000},  {"24h", -1, 86400000},
        {"1d", -1, 86400000},     {"0", 0, -1},
        {"1h", 3600000, 3600000},
    };
    for (size_t i = 0; i < KN_ARRAY_SIZE(cases); i++) {
        struct kn_config cfg;
        char *text, *errs, *path;
        int rc;

        text = kn_xasprintf("[dispatcher]\ndrain_ms = %s\n", cases[i].text);
        rc = load_text(&cfg, text, &errs, &path);
        if (cases[i].drain >= 0) {
            assert_int_equal(rc, 0);
            assert_int_equal(cfg.drain_ms, cases[i].drain);
        } else {
            assert_int_equal(rc, KN_ECONFIG);
            assert_non_null(strstr(errs, "from 0 to 1h"));
        }
        kn_config_free(&cfg);
        free(text);
        free(errs);
        free(path);

        text = kn_xasprintf("[dispatcher]\ndefault_ttl = %s\n", cases[i].text);
        rc = load_text(&cfg, text, &errs, &path);
        if (cases[i].ttl >= 0) {
            assert_int_equal(rc, 0);
            assert_int_equal(cfg.default_ttl_ms, cases[i].ttl);
        } else {
            assert_int_equal(rc, KN_ECONFIG);
            assert_non_null(strstr(errs, "from 1m to 30d"));
        }
        kn_config_free(&cfg);
        free(text);
        free(errs);
        free(path);
    }
}

static void test_empty_value_unsets_optional(void **state)
{
    struct kn_config cfg;
    free(load_ok(&cfg, "[smtp]\nhelo =\nca_file = /etc/ca.pem\n"));
    assert_null(cfg.smtp_helo);
    assert_string_equal(cfg.smtp_ca_file, "/etc/ca.pem");
    kn_config_free(&cfg);
}

/* ---- environment and secret files --------------------------------------- */

static void test_env_overrides(void **state)
{
    struct kn_config cfg;
    char *errs, *path;

    setenv("KAIRAN_REDIS_URL", "redis://:envpw@redis.internal:6380/3", 1);
    setenv("KAIRAN_SMTP_PASSWORD", "smtp-env", 1);
    setenv("KAIRAN_OUTBOX_DIR", "/var/spool/kairan", 1);
    setenv("KAIRAN_KEY_FILE", "", 1); /* empty: ignored */
    free(load_ok(&cfg, "[outbox]\ndir = /from/file\n"
                       "[security]\nkey_file = /from/file/key\n"));
    assert_string_equal(cfg.redis_url, "redis://:envpw@redis.internal:6380/3");
    assert_string_equal(cfg.redis_password, "envpw");
    assert_string_equal(cfg.smtp_password, "smtp-env");
    assert_string_equal(cfg.outbox_dir, "/var/spool/kairan");
    assert_string_equal(cfg.key_file, "/from/file/key");
    kn_config_free(&cfg);

    setenv("KAIRAN_KEY_FILE", "/env/key", 1);
    assert_int_equal(load(&cfg, NULL, &errs), 0);
    free(errs);
    assert_string_equal(cfg.key_file, "/env/key");
    kn_config_free(&cfg);

    /* A bad value from the environment names the variable, not a line. */
    setenv("KAIRAN_REDIS_URL", "redis://:s3cret@host:0", 1);
    setenv("KAIRAN_OUTBOX_DIR", "a\nb", 1);
    assert_int_equal(load_text(&cfg, "[smtp]\n", &errs, &path), KN_ECONFIG);
    assert_errors(errs,
                  "KAIRAN_REDIS_URL (environment): redis.url = "
                  "'redis://:***@host:0': the port must be a number from 1 "
                  "to 65535\n"
                  "KAIRAN_OUTBOX_DIR (environment): outbox.dir = 'a?b': "
                  "control characters are not allowed\n");
    assert_null(strstr(errs, "s3cret"));
    free(errs);
    free(path);
    clear_env();
}

static void test_password_files(void **state)
{
    struct kn_config cfg;
    char *rpw = write_file("redis.pw", "r3dis\nsecond line\n");
    char *spw = write_file("smtp.pw", "sm7p ;x\r\n");
    char *text, *errs;

    setenv("KAIRAN_SMTP_PASSWORD", "from-env", 1);
    text = kn_xasprintf("[redis]\n"
                        "url = redis://:urlpw@db/1\n"
                        "password_file = %s\n"
                        "[smtp]\n"
                        "username = kairan\n"
                        "password = inline\n"
                        "password_file = %s\n",
                        rpw, spw);
    free(load_ok(&cfg, text));
    assert_string_equal(cfg.redis_password, "r3dis");
    assert_string_equal(cfg.smtp_password, "sm7p ;x");
    assert_string_equal(cfg.redis_password_file, rpw);
    assert_int_equal(check(&cfg, &errs), 0);
    free(errs);
    kn_config_free(&cfg);
    clear_env();
    free(text);

    /* Without a file, the url's percent-decoded password is used. */
    free(load_ok(&cfg, "[redis]\nurl = redis://u:p%40ss@db\n"));
    assert_string_equal(cfg.redis_password, "p@ss");
    /* and its user is the ACL user kairan logs in as (AUTH u p@ss) */
    assert_string_equal(cfg.redis_user, "u");
    kn_config_free(&cfg);
    free(load_ok(&cfg, "[redis]\nurl = redis://:pw@db\n"));
    assert_null(cfg.redis_user); /* AUTH pw: the "default" user */
    kn_config_free(&cfg);
    free(load_ok(&cfg, "[redis]\nurl = redis://kairan%2Dx:@db\n"));
    assert_string_equal(cfg.redis_user, "kairan-x");
    assert_null(cfg.redis_password); /* a "nopass" user, or from a file */
    kn_config_free(&cfg);
    free(rpw);
    free(spw);
}

static void test_password_file_errors(void **state)
{
    struct kn_config cfg;
    char *missing = kn_xasprintf("%s/nope.pw", tmpdir);
    char *empty = write_file("empty.pw", "\n");
    char *text, *errs, *path;

    text = kn_xasprintf("[smtp]\n"
                        "password = hunter2\n"
                        "password_file = %s\n"
                        "[redis]\n"
                        "url = redis://:hunter3@db\n"
                        "password_file = %s\n",
                        missing, empty);
    assert_int_equal(load_text(&cfg, text, &errs, &path), KN_ECONFIG);
    assert_errors(errs,
                  "%1$s:6: redis.password_file: cannot read the password "
                  "from '%3$s': the first line is empty\n"
                  "%1$s:3: smtp.password_file: cannot read the password "
                  "from '%2$s': No such file or directory\n",
                  path, missing, empty);
    assert_null(strstr(errs, "hunter"));
    free(errs);
    free(path);
    free(text);
    free(missing);
    free(empty);
}

/* ---- cross-key checks --------------------------------------------------- */

static void test_check_claim_idle(void **state)
{
    struct kn_config cfg;
    char *path, *errs;

    /* 70s is not larger than 60s + 10s. */
    path = load_ok(&cfg, "[queue]\nclaim_idle_ms = 70s\n");
    assert_int_equal(check(&cfg, &errs), KN_ECONFIG);
    assert_errors(errs,
                  "%s: queue.claim_idle_ms (70000 ms) must be larger than "
                  "smtp.timeout_ms + dispatcher.drain_ms (70000 ms): a slow "
                  "send would be claimed and sent twice\n",
                  path);
    free(errs);
    free(path);
    kn_config_free(&cfg);

    free(load_ok(&cfg, "[queue]\nclaim_idle_ms = 70001\n"));
    assert_int_equal(check(&cfg, &errs), 0);
    free(errs);
    kn_config_free(&cfg);
}

static void test_check_cross_keys(void **state)
{
    static const struct {
        const char *text;
        const char *error; /* NULL: check passes */
    } cases[] = {
        {"[queue]\nretry_base_ms = 10m\nretry_cap_ms = 5m\n",
         "queue.retry_cap_ms (300000 ms) must be at least "
         "queue.retry_base_ms (600000 ms)"},
        {"[smtp]\nurl = smtps://mx.example.jp:465\n",
         "smtp.url is smtps:// (TLS from the first byte, usually port 465) "
         "but smtp.tls = starttls: set smtp.tls = implicit"},
        {"[smtp]\nurl = smtps://mx.example.jp\ntls = none\n",
         "but smtp.tls = none"},
        {"[smtp]\ntls = implicit\n",
         "smtp.tls = implicit needs an smtps:// url (usually port 465); "
         "with smtp:// use smtp.tls = starttls"},
        {"[smtp]\nusername = kairan\n",
         "smtp.username is set but there is no password: set "
         "smtp.password_file or KAIRAN_SMTP_PASSWORD"},
        {"[smtp]\nurl = smtps://mx.example.jp\ntls = implicit\n", NULL},
        {"[smtp]\nbounce_local = bounce\n",
         "smtp.bounce_local and smtp.bounce_domain go together"},
        {"[smtp]\nbounce_local = bounce\nbounce_domain = b.example.jp\n"
         "[sendgrid]\nwebhook_public_key = MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcD"
         "QgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnl"
         "vFYPAZFceEu/1FwCM/QmGUhA==\n",
         NULL},
        {"[smtp]\nurl = smtp://mail.example.jp:587\ntls = none\n", NULL},
        {"[smtp]\nurl = smtp://[::1]:25\nfrom = a@b\n", NULL},
        /* A promise broken is kn_config_promises', not a problem that
         * stops kairand (test_promises). */
        {"[retention]\nclosed_tenant_days = 60\n", NULL},
    };
    for (size_t i = 0; i < KN_ARRAY_SIZE(cases); i++) {
        struct kn_config cfg;
        char *path = load_ok(&cfg, cases[i].text), *errs;
        int rc = check(&cfg, &errs);
        if (cases[i].error == NULL) {
            assert_string_equal(errs, "");
            assert_int_equal(rc, 0);
        } else {
            if (strstr(errs, cases[i].error) == NULL)
                fail_msg("case %zu: got '%s'", i, errs);
            assert_int_equal(rc, KN_ECONFIG);
        }
        free(errs);
        free(path);
        kn_config_free(&cfg);
    }
}

/* check() also guards a struct changed after loading. */
static void test_check_from_and_url(void **state)
{
    struct kn_config cfg;
    char *errs;

    assert_int_equal(load(&cfg, NULL, &errs), 0);
    free(errs);
    free(cfg.smtp_from);
    cfg.smtp_from = kn_xstrdup("kairan");
    free(cfg.smtp_url);
    cfg.smtp_url = kn_xstrdup("http://mx");
    assert_int_equal(check(&cfg, &errs), KN_ECONFIG);
    assert_errors(errs, "smtp.url: expected smtp://host[:port] or "
                        "smtps://host[:port]\n"
                        "smtp.from: expected an address such as 'kairan "
                        "<noreply@school.example.jp>' or "
                        "'noreply@school.example.jp'\n");
    free(errs);
    kn_config_free(&cfg);
}

/* The per-key validators report at load time, with the line. */
static void test_validators(void **state)
{
    static const struct {
        const char *line;
        const char *error;
    } cases[] = {
        {"[smtp]\nfrom = kairan\n",
         ":2: smtp.from = 'kairan': expected an address"},
        {"[smtp]\nfrom = kairan <noreply@>\n", "expected an address"},
        {"[smtp]\nreply_to = office\n", "smtp.reply_to = 'office'"},
        {"[smtp]\nurl = http://mx\n",
         "smtp.url = 'http://mx': expected smtp://host[:port]"},
        {"[smtp]\nurl = smtp://u:pw@mx\n",
         "smtp.url = 'smtp://u:***@mx': no user or password in the url"},
        {"[smtp]\nurl = smtp://mx/helo\n", "no path in the url"},
        {"[smtp]\nurl = smtp://mx/\n", "no path in the url"},
        {"[smtp]\nurl = smtp://mx:0\n", "expected smtp://host[:port]"},
        {"[smtp]\nhelo = mx example\n", "expected a host name"},
        {"[redis]\nurl = unix:///run/redis.sock\n",
         "unix sockets are not supported"},
        {"[redis]\nprefix =\n", "redis.prefix = '': expected a non-empty"},
        {"[dispatcher]\nlog_level = verbose\n",
         "expected one of debug, info, warn, error"},
        {"[routes]\nline = smtp\n", "expected one of line, outbox"},
        {"[queue]\nmax_attempts = 0\n", "expected an integer from 1 to 100"},
        {"[queue]\nmax_attempts = -1\n", "expected an integer from 1 to 100"},
        {"[queue]\nmax_attempts = 99999999999999999999\n",
         "expected an integer from 1 to 100"},
        {"[outbox]\nslots = 4097\n", "expected an integer from 1 to 4096"},
        {"[dispatcher]\nexpand_page = 1e3\n",
         "expected an integer from 1 to 10000"},
        /* issue 18 */
        {"[smtp]\nbounce_local = bounce+x\n", "no '+': kairan adds"},
        {"[smtp]\nbounce_local = Bounce\n", "lower-case letters"},
        {"[smtp]\nbounce_local = .b\n", "a '.' may not start"},
        {"[smtp]\nbounce_domain = bounce example\n", "expected a host name"},
        {"[sendgrid]\nwebhook_public_key = not base64!\n",
         "expected the base64 public key"},
        {"[sendgrid]\nwebhook_public_key = aGVsbG8=\n", "not a public key"},
        /* an RSA key (SubjectPublicKeyInfo, 512 bits) is not P-256 */
        {"[sendgrid]\nwebhook_public_key = MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBA"
         "KjDzuO9ekDCsqV13A1v5+pX/AfaOGIx3iyGCR8xkUWmnvxLCszEGr5RkpkVr4aWKx"
         "olOs8fiP/Ga8Vi3rQjb08CAwEAAQ==\n",
         "not an ECDSA P-256 key"},
        /* P-384 is not P-256 either */
        {"[sendgrid]\nwebhook_public_key = MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE"
         "++UCrsSHgqfy3O0DHAo9P2VqAxgOtmEQm9VJqg4ppa9Y5/KUIcAhp3oal4neOJfNS"
         "VinyQCEhrHwGFQTIeJEB/ct9o02WDZksG8Gc+cdEUby3ahgM0yPHhHKjF8j5y8N\n",
         "not an ECDSA P-256 key"},
    };
    for (size_t i = 0; i < KN_ARRAY_SIZE(cases); i++) {
        struct kn_config cfg;
        char *errs, *path;
        assert_int_equal(load_text(&cfg, cases[i].line, &errs, &path),
                         KN_ECONFIG);
        if (strstr(errs, cases[i].error) == NULL)
            fail_msg("case %zu: got '%s'", i, errs);
        assert_null(strstr(errs, ":pw@"));
        free(errs);
        free(path);
    }
}

/* ---- redis urls --------------------------------------------------------- */

static void test_redis_url_parse(void **state)
{
    static const struct {
        const char *url;
        const char *host; /* NULL: KN_EINVAL */
        int port, db;
        const char *password;
    } cases[] = {
        {"redis://127.0.0.1:6379/0", "127.0.0.1", 6379, 0, NULL},
        {"redis://localhost", "localhost", 6379, 0, NULL},
        {"redis://", "127.0.0.1", 6379, 0, NULL},
        {"redis://:6380", "127.0.0.1", 6380, 0, NULL},
        {"redis://h/", "h", 6379, 0, NULL},
        {"redis://:secret@db.example.jp:6380/2", "db.example.jp", 6380, 2,
         "secret"},
        {"redis://default:p%40ss%3Aw%2Fd%25@h/15", "h", 6379, 15, "p@ss:w/d%"},
        {"redis://:p@ss@h", "h", 6379, 0, "p@ss"},
        {"redis://:@h", "h", 6379, 0, NULL},
        {"redis://[::1]:7000/1", "::1", 7000, 1, NULL},
        {"redis://h:65535/2147483647", "h", 65535, 2147483647, NULL},
        {"http://h", NULL, 0, 0, NULL},
        {"rediss://h", NULL, 0, 0, NULL},
        {"unix:///tmp/redis.sock", NULL, 0, 0, NULL},
        {"REDIS://h", NULL, 0, 0, NULL},
        {"redis://h:0", NULL, 0, 0, NULL},
        {"redis://h:65536", NULL, 0, 0, NULL},
        {"redis://h:abc", NULL, 0, 0, NULL},
        {"redis://h:", NULL, 0, 0, NULL},
        {"redis://h:-1", NULL, 0, 0, NULL},
        {"redis://h/x", NULL, 0, 0, NULL},
        {"redis://h/-1", NULL, 0, 0, NULL},
        {"redis://h/1/2", NULL, 0, 0, NULL},
        {"redis://h/2147483648", NULL, 0, 0, NULL},
        {"redis://secret@h", NULL, 0, 0, NULL},
        {"redis://:%zz@h", NULL, 0, 0, NULL},
        {"redis://:%4@h", NULL, 0, 0, NULL},
        {"redis://:%00@h", NULL, 0, 0, NULL},
        /* a user name goes to logs: no space, no control character */
        {"redis://a%20b:p@h", NULL, 0, 0, NULL},
        {"redis://a%0Ab:p@h", NULL, 0, 0, NULL},
        {"redis://a%1Bb:p@h", NULL, 0, 0, NULL},
        {"redis://a%7Fb:p@h", NULL, 0, 0, NULL},
        {"redis://a%zz:p@h", NULL, 0, 0, NULL},
        {"redis://h?db=1", NULL, 0, 0, NULL},
        {"redis://bad host", NULL, 0, 0, NULL},
        {"redis://[::1", NULL, 0, 0, NULL},
        {"redis://[::1]x", NULL, 0, 0, NULL},
        {"", NULL, 0, 0, NULL},
    };
    for (size_t i = 0; i < KN_ARRAY_SIZE(cases); i++) {
        char *host = (char *)"untouched", *pw = (char *)"untouched";
        int port = -7, db = -7;
        int rc = kn_redis_url_parse(cases[i].url, &host, &port, &db, &pw);
        if (cases[i].host == NULL) {
            if (rc != KN_EINVAL)
                fail_msg("'%s' was accepted", cases[i].url);
            assert_string_equal(host, "untouched");
            assert_string_equal(pw, "untouched");
            assert_int_equal(port, -7);
            assert_int_equal(db, -7);
            continue;
        }
        if (rc != 0)
            fail_msg("'%s' was refused", cases[i].url);
        assert_string_equal(host, cases[i].host);
        assert_int_equal(port, cases[i].port);
        assert_int_equal(db, cases[i].db);
        if (cases[i].password == NULL)
            assert_null(pw);
        else
            assert_string_equal(pw, cases[i].password);
        free(host);
        free(pw);
    }
    /* Every output is optional. */
    assert_int_equal(
        kn_redis_url_parse("redis://:x@h:1/2", NULL, NULL, NULL, NULL), 0);
    assert_int_equal(kn_redis_url_parse(NULL, NULL, NULL, NULL, NULL),
                     KN_EINVAL);
}

/* Row 9 of SECURITY-PROMISES.md: all of a closed tenant's data is gone
 * within 70 days, its copies in the kept backups too; row 2: plaintext
 * SMTP only to a relay on this host or a local network, never a password
 * across a network.
 * kairand --check warns, kairand runs and logs it (dispatcher/main.c). */
static void test_promises(void **state)
{
    static const struct {
        const char *text;
        const char *why; /* NULL: none */
    } cases[] = {
        {"[retention]\nclosed_tenant_days = 60\n",
         "retention.closed_tenant_days (60) + retention.backup_days (30) = "
         "90 days: a closed tenant's data would outlive the 70 days "
         "promised in the backups"},
        {"[retention]\nclosed_tenant_days = 60\nbackup_days = 10\n", NULL},
        {"[retention]\nclosed_tenant_days = 40\n", NULL},
        {"[retention]\n", NULL},
        /* Row 2: smtp.tls = none sends nothing to a relay that is not
         * on this host or a local network, password or not. */
        {"[smtp]\nurl = smtp://192.0.2.10:25\ntls = none\nusername = k\n"
         "password = p\n",
         "smtp.tls = none, but the relay 192.0.2.10 is not on this host or "
         "a local network"},
        {"[smtp]\nurl = smtp://192.0.2.10:25\ntls = none\n",
         "smtp.tls = none, but the relay 192.0.2.10 is not on this host or "
         "a local network"},
        {"[smtp]\nurl = smtp://[2001:db8::25]:25\ntls = none\n"
         "username = k\npassword = p\n",
         "the relay 2001:db8::25 is not on this host or a local network"},
        {"[smtp]\nurl = smtp://172.32.0.1:25\ntls = none\n",
         "the relay 172.32.0.1 is not on this host or a local network"},
        {"[smtp]\nurl = smtp://100.64.0.25:25\ntls = none\n",
         "the relay 100.64.0.25 is not on this host or a local network"},
        {"[smtp]\nurl = smtp://[fec0::25]:25\ntls = none\n",
         "the relay fec0::25 is not on this host or a local network"},
        {"[smtp]\nurl = smtp://[::ffff:8.8.8.8]:25\ntls = none\n",
         "the relay ::ffff:8.8.8.8 is not on this host or a local network"},
        {"[smtp]\nurl = smtp://[64:ff9b::a00:19]:25\ntls = none\n",
         "the relay 64:ff9b::a00:19 is not on this host or a local network"},
        /* a name that does not resolve cannot be told to be local (what
         * it says after "relay.invalid" depends on the resolver) */
        {"[smtp]\nurl = smtp://relay.invalid:25\ntls = none\n",
         "smtp.tls = none, but the relay relay.invalid "},
        /* on a local network: mail, but no password, in clear */
        {"[smtp]\nurl = smtp://10.0.0.25:25\ntls = none\n", NULL},
        {"[smtp]\nurl = smtp://172.16.0.25:25\ntls = none\n", NULL},
        {"[smtp]\nurl = smtp://192.168.1.25:25\ntls = none\n", NULL},
        {"[smtp]\nurl = smtp://169.254.0.25:25\ntls = none\n", NULL},
        {"[smtp]\nurl = smtp://[fd00::25]:25\ntls = none\n", NULL},
        {"[smtp]\nurl = smtp://[fe80::25]:25\ntls = none\n", NULL},
        {"[smtp]\nurl = smtp://[::ffff:192.168.1.25]:25\ntls = none\n", NULL},
        {"[smtp]\nurl = smtp://10.0.0.25:25\ntls = none\nusername = k\n"
         "password = p\n",
         "smtp.tls = none with smtp.username, but the relay 10.0.0.25 is not "
         "on this host"},
        {"[smtp]\nurl = smtp://[fd00::25]:25\ntls = none\nusername = k\n"
         "password = p\n",
         "smtp.tls = none with smtp.username, but the relay fd00::25 is not "
         "on this host"},
        /* on this host: both */
        {"[smtp]\nurl = smtp://127.0.0.1:25\ntls = none\nusername = k\n"
         "password = p\n",
         NULL},
        {"[smtp]\nurl = smtp://127.1.2.3:2525\ntls = none\nusername = k\n"
         "password = p\n",
         NULL},
        {"[smtp]\nurl = smtp://[::1]:25\ntls = none\nusername = k\n"
         "password = p\n",
         NULL},
        {"[smtp]\nurl = smtp://[::ffff:127.0.0.1]:25\ntls = none\n"
         "username = k\npassword = p\n",
         NULL},
        {"[smtp]\nurl = smtp://localhost:25\ntls = none\nusername = k\n"
         "password = p\n",
         NULL},
        /* with TLS, or e-mail not through the relay: nothing to say */
        {"[smtp]\nurl = smtp://192.0.2.10:587\nusername = k\n"
         "password = p\n",
         NULL},
        {"[smtp]\nurl = smtps://192.0.2.10\ntls = implicit\n", NULL},
        {"[routes]\nemail = outbox\n[smtp]\nurl = smtp://192.0.2.10:25\n"
         "tls = none\nusername = k\npassword = p\n",
         NULL},
    };
    (void)state;
    for (size_t i = 0; i < KN_ARRAY_SIZE(cases); i++) {
        struct kn_config cfg;
        char *errs, *path, why[400];
        int n;
        assert_int_equal(load_text(&cfg, cases[i].text, &errs, &path), 0);
        n = kn_config_promises(&cfg, why, sizeof(why));
        if (cases[i].why == NULL && n != 0)
            fail_msg("%s: unexpected: %s", cases[i].text, why);
        if (cases[i].why != NULL && (n != 1 || !strstr(why, cases[i].why)))
            fail_msg("%s: want \"%s\", got: %s", cases[i].text, cases[i].why,
                     why);
        kn_config_free(&cfg);
        free(errs);
        free(path);
    }
    /* Both at once: both sentences, joined. */
    {
        struct kn_config cfg;
        char *errs, *path, why[1024];
        assert_int_equal(
            load_text(&cfg,
                      "[retention]\nclosed_tenant_days = 60\n[smtp]\n"
                      "url = smtp://192.0.2.10:25\ntls = none\n"
                      "username = k\npassword = p\n",
                      &errs, &path),
            0);
        assert_int_equal(kn_config_promises(&cfg, why, sizeof(why)), 2);
        assert_non_null(strstr(why, "retention.closed_tenant_days (60)"));
        assert_non_null(strstr(why, "; smtp.tls = none, but the relay"));
        /* a short buffer is cut, never overrun */
        assert_int_equal(kn_config_promises(&cfg, why, 40), 2);
        assert_int_equal(strlen(why), 39);
        kn_config_free(&cfg);
        free(errs);
        free(path);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_example_loads),
        cmocka_unit_test(test_example_documents_every_key),
        cmocka_unit_test(test_errors_are_collected),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_line_length_limit),
        cmocka_unit_test(test_semicolon_is_part_of_the_value),
        cmocka_unit_test(test_indent_crlf_bom),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_empty_value_unsets_optional),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_password_files),
        cmocka_unit_test(test_password_file_errors),
        cmocka_unit_test(test_check_claim_idle),
        cmocka_unit_test(test_check_cross_keys),
        cmocka_unit_test(test_check_from_and_url),
        cmocka_unit_test(test_validators),
        cmocka_unit_test(test_redis_url_parse),
        cmocka_unit_test(test_duration_needs_unit),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_public_url),
        cmocka_unit_test(test_promises),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
