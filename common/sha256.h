/* sha256.h: SHA-256 (FIPS 180-4) for content hashes and manifest checksums. */
#ifndef FB_SHA256_H
#define FB_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t used;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
void sha256_final(sha256_ctx *c, uint8_t out[32]);
/* Lowercase hex digest of data into hex[65]. */
void sha256_hex(const void *data, size_t len, char hex[65]);
void sha256_final_hex(sha256_ctx *c, char hex[65]);
/* Hex SHA-256 of a file's bytes, read in blocks; -1 if it cannot be read. */
int sha256_file(const char *path, char hex[65]);

#endif
