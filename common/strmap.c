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
    m->keys = xcalloc(cap, sizeof *m->keys);
    m->lens = xcalloc(cap, sizeof *m->lens);
    m->vals = xcalloc(cap, sizeof *m->vals);
}

void strmap_free(strmap *m)
{
    free(m->keys);
    free(m->lens);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static size_t find_slot(const strmap *m, const char *key, size_t len)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)hash_bytes(key, len, 0) & mask;
    while (m->keys[i] && !(m->lens[i] == len && memcmp(m->keys[i], key, len) == 0)) i = (i + 1) & mask;
    return i;
}

static void grow(strmap *m)
{
    strmap old = *m;
    strmap_init(m, old.cap);  /* doubles the capacity */
    for (size_t i = 0; i < old.cap; i++) {
        if (!old.keys[i]) continue;
        size_t j = find_slot(m, old.keys[i], old.lens[i]);
        m->keys[j] = old.keys[i];
        m->lens[j] = old.lens[i];
        m->vals[j] = old.vals[i];
        m->count++;
    }
    strmap_free(&old);
}

long strmap_put(strmap *m, const char *key, size_t len, long val)
{
    if ((m->count + 1) * 2 > m->cap) grow(m);
    size_t i = find_slot(m, key, len);
    if (m->keys[i]) return m->vals[i];
    m->keys[i] = key;
    m->lens[i] = (uint32_t)len;
    m->vals[i] = val;
    m->count++;
    return -1;
}

long strmap_get(const strmap *m, const char *key, size_t len)
{
    size_t i = find_slot(m, key, len);
    return m->keys[i] ? m->vals[i] : -1;
}
