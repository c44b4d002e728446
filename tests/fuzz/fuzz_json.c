/*
 * fuzz_json.c - libFuzzer target for the fast JSON reader (common/json.c),
 * differential: whatever it takes, json_loadb must take too and give an
 * equal tree; and kn_json_load must answer exactly as json_loadb (it reads
 * audience entries and directory records, which anyone with Redis access
 * can write).
 */
#include "common/json.h"
#include "tests/fuzz/fuzz.h"

/* json_equal ignores the order of an object's keys, which a reader of
 * the records keeps: compare the written forms too. */
static int same_text(const json_t *a, const json_t *b)
{
    char *x = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY);
    char *y = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
    int same = x != NULL && y != NULL && strcmp(x, y) == 0;
    free(x);
    free(y);
    return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    const char *s = (const char *)data;
    json_t *f = kn_json_load_simple(s, n);
    json_t *j = json_loadb(s, n, 0, NULL);
    json_t *l = kn_json_load(s, n);
    if (f != NULL) {
        FZ_CHECK(j != NULL, "the fast reader took what jansson refuses");
        FZ_CHECK(json_equal(f, j) && same_text(f, j),
                 "the fast reader's tree differs");
    }
    FZ_CHECK((l == NULL) == (j == NULL), "kn_json_load answers otherwise");
    FZ_CHECK(l == NULL || (json_equal(l, j) && same_text(l, j)),
             "kn_json_load's tree differs");
    json_decref(f);
    json_decref(j);
    json_decref(l);
    return 0;
}
