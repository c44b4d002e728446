/*
 * notify.c - kairand's side of systemd's service protocol (sd_notify(3),
 * libsystemd): READY=1 once Redis is reachable and the adapters are open,
 * STOPPING=1 when the drain begins, STATUS= lines for "systemctl status",
 * and WATCHDOG=1 from a timer on the loop, so that systemd restarts a
 * kairand whose loop hangs (WatchdogSec= in kairand.service).
 *
 * It owns one uv timer (the watchdog) and nothing else.  It never blocks
 * the loop: each message is one datagram on a local socket.  Without
 * NOTIFY_SOCKET (kairand run by hand, by a test, or by another supervisor)
 * every call does nothing, and a failed send is not an error: kairand
 * works the same whether or not anyone listens.
 */
#include "notify.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "common/log.h"

static uv_timer_t watchdog;
static int watchdog_on; /* the timer is initialized and not yet closed */

static int notify_enabled(void)
{
    const char *s = getenv("NOTIFY_SOCKET");
    return s != NULL && s[0] != '\0';
}

void kn__notify_ready(void)
{
    if (notify_enabled())
        sd_notify(0, "READY=1\nSTATUS=ready");
}

void kn__notify_stopping(void)
{
    if (notify_enabled())
        sd_notify(0, "STOPPING=1\nSTATUS=draining");
}

/*
 * STATUS= is one line in systemd's protocol: a newline would start a new
 * assignment, so newlines (and other control characters) become blanks.
 * The text is cut at 200 bytes, never inside a UTF-8 character; a status
 * line is a headline, not a log.
 */
void kn__notify_status(const char *text)
{
    char line[7 + 200 + 1];
    size_t n = 7, i = 0;

    if (!notify_enabled() || text == NULL)
        return;
    memcpy(line, "STATUS=", 7);
    for (; text[i] != '\0' && n < sizeof(line) - 1; i++)
        line[n++] = (unsigned char)text[i] < 0x20 ? ' ' : text[i];
    /* Cut before a continuation byte: drop the partial character. */
    if (text[i] != '\0' && ((unsigned char)text[i] & 0xC0) == 0x80) {
        while (n > 7 && ((unsigned char)line[n - 1] & 0xC0) == 0x80)
            n--;
        if (n > 7)
            n--; /* the lead byte */
    }
    line[n] = '\0';
    sd_notify(0, line);
}

static void on_watchdog(uv_timer_t *t)
{
    sd_notify(0, "WATCHDOG=1");
}

/*
 * Start the watchdog timer.
 *   1. sd_watchdog_enabled() reads WATCHDOG_USEC (and WATCHDOG_PID, so a
 *      child that inherited the variables does not ping for its parent);
 *      0 or an error: no watchdog, nothing to close later.
 *   2. The ping goes at half the interval, as sd_watchdog_enabled(3)
 *      advises, and once at once: the first interval starts when systemd
 *      starts the unit, not when the loop starts turning.
 *   3. The timer is unreferenced: it must never be what keeps uv_run()
 *      from returning.
 */
void kn__notify_watchdog_start(uv_loop_t *loop)
{
    uint64_t usec = 0, every_ms;
    char every[24];

    if (watchdog_on || !notify_enabled())
        return;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return;
    every_ms = usec / 2000;
    if (every_ms == 0)
        every_ms = 1;
    uv_timer_init(loop, &watchdog);
    uv_unref((uv_handle_t *)&watchdog);
    uv_timer_start(&watchdog, on_watchdog, 0, every_ms);
    watchdog_on = 1;
    snprintf(every, sizeof(every), "%llu", (unsigned long long)every_ms);
    kn_log(KN_LOG_INFO, "notify", "systemd watchdog on", "every_ms", every,
           NULL);
}

void kn__notify_watchdog_stop(void)
{
    if (!watchdog_on)
        return;
    watchdog_on = 0;
    uv_timer_stop(&watchdog);
    uv_close((uv_handle_t *)&watchdog, NULL);
}
