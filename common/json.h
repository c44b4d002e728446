/*
 * json.h - reading the small JSON records kairan stores, faster than
 * jansson's own reader.
 *
 * An audience entry ("i:" + a directory record, model/directory.h) is a
 * flat object of a few short strings; the expander reads one per
 * recipient, and jansson's reader, which takes its input a byte at a time
 * through a stream and a growing buffer, was a third of kairand's CPU time
 * in a large LINE broadcast (README, "LINE expansion").  kn_json_load
 * reads the common shape directly and builds the same jansson tree; any
 * input outside that shape (an escape in a string, a number that is not a
 * small integer, deep nesting, anything malformed) goes to json_loadb as
 * before, so the result is always what json_loadb(s, n, 0, NULL) gives
 * (tests/fuzz/fuzz_json.c checks exactly that).
 */
#ifndef KN_COMMON_JSON_H
#define KN_COMMON_JSON_H

#include <jansson.h>
#include <stddef.h>

/* json_loadb(s, n, 0, NULL), the same tree, read faster when it can be. */
json_t *kn_json_load(const char *s, size_t n);

/*
 * The fast reader alone: the tree, or NULL when the input is outside its
 * shape (not necessarily invalid: kn_json_load then asks jansson).  For
 * the tests and the fuzzer.
 */
json_t *kn_json_load_simple(const char *s, size_t n);

#endif
