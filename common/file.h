/*
 * file.h - reading a whole file, with a size cap: the one copy (kairanctl
 * submit and report, the roster import).
 */
#ifndef KN_COMMON_FILE_H
#define KN_COMMON_FILE_H

#include <stddef.h>

/*
 * Read all of path ("-": standard input) into a NUL-terminated heap buffer
 * *out of *len bytes.  At most max bytes (0: no cap).  Returns 0, or:
 *  1. KN_ETOOBIG when the file holds more than max bytes (*out NULL);
 *  2. KN_EIO when it cannot be opened or read: errno says why, for
 *     strerror (*out NULL).
 */
int kn_file_read(const char *path, size_t max, char **out, size_t *len);

/*
 * A secret kept in a file (a password, an API key): the first line of
 * path, without its line end, into *out (heap; the read buffer is wiped).
 * Returns 0, or -1 with *why set to a static reason or strerror text: the
 * file cannot be read, its first line is empty or holds a NUL or a control
 * character.
 */
int kn_file_read_secret(const char *path, char **out, const char **why);

#endif
