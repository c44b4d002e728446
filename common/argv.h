/*
 * argv.h - a growable list of binary-safe strings, the shape Redis
 * commands and Lua script arguments take.
 */
#ifndef KN_COMMON_ARGV_H
#define KN_COMMON_ARGV_H

#include <stddef.h>
#include <stdint.h>

struct kn_argv {
    char **v;
    size_t *len;
    int n, cap;
};

void kn_argv_init(struct kn_argv *a);
void kn_argv_free(struct kn_argv *a);
void kn_argv_clear(struct kn_argv *a);
/* Append a copy of s (n bytes). */
void kn_argv_addn(struct kn_argv *a, const char *s, size_t n);
void kn_argv_add(struct kn_argv *a, const char *s);
void kn_argv_addf(struct kn_argv *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void kn_argv_addi(struct kn_argv *a, int64_t v);
/* Take ownership of a heap string. */
void kn_argv_take(struct kn_argv *a, char *s);
/* Append all of b's strings (copies). */
void kn_argv_extend(struct kn_argv *a, const struct kn_argv *b);
/* Append all of b's strings without copying; b is left empty. */
void kn_argv_move(struct kn_argv *a, struct kn_argv *b);

#endif
