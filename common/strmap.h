/* strmap.h: string -> index map (open addressing, linear probing). Keys are
 * borrowed: the caller keeps them alive for the map's lifetime. */
#ifndef FB_STRMAP_H
#define FB_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *key;   /* NULL: empty slot */
    uint32_t len;
    uint32_t hash;     /* compared first, so probes rarely touch the key */
    long val;
} strmap_slot;

typedef struct {
    strmap_slot *slot;
    size_t cap, count;
} strmap;

void strmap_init(strmap *m, size_t expected);
void strmap_free(strmap *m);
/* Returns the existing value for key, or inserts val and returns -1. */
long strmap_put(strmap *m, const char *key, size_t len, long val);
/* Returns the value for key, or -1. */
long strmap_get(const strmap *m, const char *key, size_t len);

uint64_t hash_bytes(const void *data, size_t len, uint64_t seed);

#endif
