/*
 * module.c - the list of optional kairand modules (see module.h).
 */
#include "module.h"

#include <stddef.h>

static struct kn_module *head;

void kn__module_register(struct kn_module *m)
{
    struct kn_module **pp = &head;
    while (*pp != NULL)
        pp = &(*pp)->_next;
    m->_next = NULL;
    *pp = m;
}

struct kn_module *kn__modules(void)
{
    return head;
}
