/*
 * module.c - the table of optional kairand modules (see module.h): a new
 * module is one file, a declaration in module.h and one row here.  The
 * order is the order they open and close in.
 */
#include "module.h"

#include <stddef.h>

static struct kn_module *const modules[] = {
    &kn_http_module,
    &kn_purge_module,
    &kn_escalate_module,
    NULL,
};

struct kn_module *const *kn__modules(void)
{
    return modules;
}
