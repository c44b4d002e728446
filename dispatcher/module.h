/*
 * module.h - optional parts of kairand (the HTTP API, the audit log, the
 * purge timer...) are rows of one table (module.c), so that the daemon's
 * core needs no edit to gain one.  A module file defines its struct
 * kn_module; no constructor, so the link order does not matter.
 *
 * open() runs once Redis is reachable and the workers have started;
 * close() runs at shutdown, before the Redis connections close.
 */
#ifndef KN_DISPATCHER_MODULE_H
#define KN_DISPATCHER_MODULE_H

struct kn_daemon;

struct kn_module {
    const char *name;
    /* Returns 0, or < 0 to stop kairand (a bad config, say; logged). */
    int (*open)(struct kn_daemon *d, void **state);
    void (*close)(struct kn_daemon *d, void *state);
    void *_state;
};

/* The modules, one row each in module.c's table. */
extern struct kn_module kn_http_module, kn_purge_module, kn_escalate_module;

/* The table, NULL-terminated, in the order the modules open. */
struct kn_module *const *kn__modules(void);

#endif
