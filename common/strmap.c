#include "strmap.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A 64-bit FNV-1a variant finished with a splitmix64 mix: simple, portable,
 * and good enough for image names. */
uint64_t hash_bytes(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

void strmap_init(strmap *m, size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    m->cap = cap;
    m->count = 0;
    m->slot = xcalloc(cap, sizeof *m->slot);
}

void strmap_free(strmap *m)
{
    free(m->slot);
    memset(m, 0, sizeof *m);
}

static size_t find_slot(const strmap *m, const char *key, size_t len, uint32_t h)
{
    size_t mask = m->cap - 1, i = h & mask;
    for (;; i = (i + 1) & mask) {
        const strmap_slot *s = &m->slot[i];
        if (!s->key || (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0)) return i;
    }
}

static void grow(strmap *m)
{
    strmap old = *m;
    strmap_init(m, old.cap);  /* doubles the capacity */
    for (size_t i = 0; i < old.cap; i++)
        if (old.slot[i].key) m->slot[find_slot(m, old.slot[i].key, old.slot[i].len, old.slot[i].hash)] = old.slot[i];
    m->count = old.count;
    strmap_free(&old);
}

long strmap_put(strmap *m, const char *key, size_t len, long val)
{
    if ((m->count + 1) * 2 > m->cap) grow(m);
    uint32_t h = (uint32_t)hash_bytes(key, len, 0);
    strmap_slot *s = &m->slot[find_slot(m, key, len, h)];
    if (s->key) return s->val;
    *s = (strmap_slot){key, (uint32_t)len, h, val};
    m->count++;
    return -1;
}

long strmap_get(const strmap *m, const char *key, size_t len)
{
    uint32_t h = (uint32_t)hash_bytes(key, len, 0);
    const strmap_slot *s = &m->slot[find_slot(m, key, len, h)];
    return s->key ? s->val : -1;
}
