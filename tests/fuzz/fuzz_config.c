/*
 * fuzz_config.c - libFuzzer target for the configuration parser
 * (config/config.c): the input is written to a temporary file and loaded
 * with kn_config_load, then checked with kn_config_check; everything is
 * freed (LeakSanitizer checks).  Errors go to /dev/null.
 *
 * Inputs naming a file under /dev, /proc or /sys are skipped: a *_file
 * key pointing at /dev/zero would make the loader read an endless first
 * line, which is an operator's mistake and not a parser bug (docs/
 * fuzzing.md).
 */
#include <fcntl.h>
#include <unistd.h>

#include "config/config.h"
#include "tests/fuzz/fuzz.h"

static char path[64];
static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char dir[] = "/tmp/kn-fuzz-config-XXXXXX";
    fz_quiet();
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(path, sizeof(path), "%s/kairan.conf", dir);
    devnull = fopen("/dev/null", "w");
    if (devnull == NULL)
        abort();
    /* Environment overrides would hide what the file says. */
    clearenv();
    return 0;
}

static int special_path(const uint8_t *d, size_t n)
{
    static const char *bad[] = {"/dev", "/proc", "/sys"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t l = strlen(bad[i]);
        for (size_t j = 0; j + l <= n; j++)
            if (memcmp(d + j, bad[i], l) == 0)
                return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kn_config cfg;
    int fd;

    if (special_path(data, size))
        return 0;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        abort();
    if (size > 0 && write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);
    memset(&cfg, 0, sizeof(cfg));
    if (kn_config_load(&cfg, path, devnull) == 0) {
        (void)kn_config_check(&cfg, devnull);
        kn_config_free(&cfg);
    }
    return 0;
}
