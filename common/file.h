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

#endif
