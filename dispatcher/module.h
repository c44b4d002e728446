/*
 * module.h - optional parts of kairand (the HTTP API, the audit log, the
 * purge timer...) register themselves here, so that the daemon's core
 * needs no edit to gain one.  A module file defines a struct kn_module and
 * writes KN_MODULE(name); the Makefile links every dispatcher object into
 * kairand directly, so the registration always runs.
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
    struct kn_module *_next;
};

void kn__module_register(struct kn_module *m);
/* First registered module (walk with ->_next). */
struct kn_module *kn__modules(void);

#define KN_MODULE(var)                                                         \
    __attribute__((constructor)) static void var##_register(void)              \
    {                                                                          \
        kn__module_register(&var);                                             \
    }

#endif
