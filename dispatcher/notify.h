/*
 * notify.h - kairand tells systemd how it is doing (sd_notify(3)): ready,
 * stopping, a status line, and a watchdog kept alive by the loop.
 *
 * Every call is a no-op when kairand was not started by systemd with
 * Type=notify (NOTIFY_SOCKET unset), so the daemon calls them
 * unconditionally.  Not a public API: names are kn__ (internal).
 */
#ifndef KN_DISPATCHER_NOTIFY_H
#define KN_DISPATCHER_NOTIFY_H

#include <uv.h>

/* READY=1: Redis is reachable and the adapters are open.  Send once. */
void kn__notify_ready(void);

/* STOPPING=1: the drain has begun (SIGTERM/SIGINT or a fatal start-up
 * refusal). */
void kn__notify_stopping(void);

/* STATUS=<text>: one line shown by "systemctl status".  text is borrowed;
 * newlines in it are sent as blanks. */
void kn__notify_status(const char *text);

/*
 * Start the watchdog: when systemd set WATCHDOG_USEC (WatchdogSec= in the
 * unit) for this process, a timer on loop sends WATCHDOG=1 at half that
 * interval, so a loop that stops turning gets kairand killed and
 * restarted.  Without WATCHDOG_USEC (or with WATCHDOG_PID naming another
 * process) nothing is started.  The timer does not keep the loop alive
 * (uv_unref), but it must be closed with kn__notify_watchdog_stop()
 * before uv_loop_close().  Calling it twice is harmless.
 */
void kn__notify_watchdog_start(uv_loop_t *loop);

/* Stop and close the watchdog timer (its close completes on the next loop
 * iteration).  Harmless when it was never started. */
void kn__notify_watchdog_stop(void);

#endif
