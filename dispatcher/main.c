/*
 * main.c - kairand: the dispatcher daemon.
 *
 *   kairand -c FILE           run in the foreground, JSON-line logs on
 *                             stderr (or dispatcher.log_file)
 *   kairand -c FILE --check   validate the config, exit 0 or 1
 *
 * Exit codes: 0 stopped cleanly (SIGTERM/SIGINT), 1 configuration or
 * start-up error (bad config, key file, Redis policy), 2 usage.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/kn.h"
#include "common/log.h"
#include "common/seal.h"
#include "config/config.h"
#include "dispatcher/daemon.h"
#include "model/message.h"

#ifndef KN_VERSION
#define KN_VERSION "0.5.0"
#endif

static void usage(FILE *f)
{
    fprintf(f, "usage: kairand -c FILE [--check]\n"
               "  -c, --config FILE  configuration (INI)\n"
               "      --check        validate the configuration and exit\n"
               "  -h, --help         this help\n"
               "  -V, --version      print the version\n"
               "exit: 0 ok, 1 config or start-up error, 2 usage\n");
}

/* Whether e-mail can carry http.public_url's one-click link
 * (List-Unsubscribe: <url/u/token>, adapters/mime.c). */
static int unsub_ok(const char *public_url)
{
    char *u = kn_xasprintf("%s/u/token", public_url);
    int ok = kn_unsub_url_ok(u);
    free(u);
    return ok;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    struct kn_config cfg;
    char promise[1024];
    const char *path = NULL;
    int check = 0, c, rc;

    /* libuv's thread pool (4 threads unless told) carries blocking work
     * that must not wait long behind other blocking work: the Sentinel
     * discovery of every Redis connection (each sentinel asked with a 1 s
     * timeout; a dozen connections reconnect at once after a failover),
     * Argon2id hashes (at most 2) and CSV exports.  Set before the pool's
     * first use; an operator's own UV_THREADPOOL_SIZE wins. */
    setenv("UV_THREADPOOL_SIZE", "16", 0);
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("kairand %s\n", KN_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || path == NULL) {
        usage(stderr);
        return 2;
    }
    rc = kn_config_load(&cfg, path, stderr);
    if (rc == 0)
        rc = kn_config_check(&cfg, stderr);
    /* Not a failure, even of --check: the units run it before every
     * start (ExecStartPre), and the notices must not stop over it. */
    if (rc == 0 && check && kn_config_promises(&cfg, promise, sizeof(promise)))
        fprintf(stderr, "%s: warning: this breaks a security promise: %s\n",
                path, promise);
    if (rc == 0 && check) {
        /* --check also proves the key file is usable. */
        struct kn_keyring *kr = NULL;
        char err[512];
        if (kn_keyring_load(cfg.key_file, &kr, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s: security.key_file: %s\n", path, err);
            rc = KN_ECONFIG;
        }
        kn_keyring_free(kr);
    }
    if (rc < 0) {
        kn_config_free(&cfg);
        return 1;
    }
    /* RFC 8058 section 3: the one-click unsubscribe URI must be HTTPS;
     * over http:// e-mail goes out without List-Unsubscribe (issue 16). */
    if (check && cfg.http_public_url != NULL &&
        strncasecmp(cfg.http_public_url, "https://", 8) == 0 &&
        !unsub_ok(cfg.http_public_url))
        printf("%s: note: http.public_url holds a character that "
               "List-Unsubscribe cannot carry (\" < > , or a space: "
               "percent-encode it): e-mail goes out without the one-click "
               "link\n",
               path);
    if (cfg.http_public_url != NULL &&
        strncasecmp(cfg.http_public_url, "http://", 7) == 0) {
        if (check)
            printf("%s: note: http.public_url is http://, not https://: "
                   "e-mail carries no List-Unsubscribe one-click link "
                   "(RFC 8058 requires an HTTPS URI)\n",
                   path);
    }
    if (check) {
        printf("%s: ok\n", path);
        kn_config_free(&cfg);
        return 0;
    }
    if (cfg.log_level != NULL)
        kn_log_level_parse(cfg.log_level, &kn_log_min);
    if (cfg.log_file != NULL && kn_log_open(cfg.log_file) < 0)
        kn_fatal("dispatcher.log_file: cannot open %s", cfg.log_file);
    if (cfg.http_public_url != NULL &&
        strncasecmp(cfg.http_public_url, "http://", 7) == 0)
        kn_log(KN_LOG_WARN, "config",
               "http.public_url is not https: e-mail carries no "
               "List-Unsubscribe (RFC 8058 requires an HTTPS URI)",
               NULL);
    if (kn_config_promises(&cfg, promise, sizeof(promise)))
        kn_log(KN_LOG_ERROR, "config",
               "the configuration breaks a security promise: fix it (kairand "
               "runs meanwhile)",
               "problem", promise, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = kn_daemon_run(&cfg);
    curl_global_cleanup();
    kn_config_free(&cfg);
    return rc;
}
