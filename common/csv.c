#include "csv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int fail_at(csv_reader *r, long line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail_at(csv_reader *r, long line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(r->err, sizeof r->err, "%s:%ld: %s", r->path, line, msg);
    return -1;
}

int csv_fail(csv_reader *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(r->err, sizeof r->err, "%s:%ld: %s", r->path, r->line, msg);
    return -1;
}

/* Strips the BOM and takes the leading comment line. */
static int start(csv_reader *r)
{
    r->pos = 0;
    r->line = r->next_line = 1;
    r->cap = 16;
    r->field = xmalloc(sizeof *r->field * r->cap);
    r->field_len = xmalloc(sizeof *r->field_len * r->cap);
    r->nfields = 0;
    r->comment = NULL;
    if (r->max_field == 0) r->max_field = CSV_DEFAULT_MAX_FIELD;
    if (r->len >= 3 && memcmp(r->buf, "\xEF\xBB\xBF", 3) == 0) r->pos = 3;
    if (r->pos < r->len && r->buf[r->pos] == '#') {
        char *s = r->buf + r->pos + 1;
        char *nl = memchr(s, '\n', r->len - (size_t)(s - r->buf));
        char *end = nl ? nl : r->buf + r->len;
        if (end > s && end[-1] == '\r') end--;
        if (memchr(s, '\0', (size_t)(end - s))) return fail_at(r, 1, "NUL byte in the header line (binary data?)");
        if (!utf8_valid(s, (size_t)(end - s))) return fail_at(r, 1, "header line is not valid UTF-8");
        *end = '\0';
        r->comment = s;
        r->pos = nl ? (size_t)(nl - r->buf) + 1 : r->len;
        r->next_line = 2;
    }
    return 0;
}

/* A failed open holds nothing (the header-line checks fail after the buffers
 * exist; callers that skip csv_close then leaked them: found by fuzz_import). */
static int opened(csv_reader *r)
{
    if (start(r) == 0) return 0;
    csv_close(r);
    return -1;
}

int csv_open(csv_reader *r, const char *path)
{
    size_t max_field = r->max_field;
    memset(r, 0, sizeof *r);
    r->max_field = max_field;
    r->path = path;
    r->buf = read_file(path, &r->len, CSV_DEFAULT_MAX_BYTES, r->err, sizeof r->err);
    if (!r->buf) return -1;
    return opened(r);
}

int csv_open_header(csv_reader *r, const char *path, const char *what)
{
    if (csv_open(r, path)) return -1;
    int got = csv_next(r);
    if (got == 1) return 0;
    /* next_line: where the header was due (2 after a leading comment line) */
    if (got == 0)
        fail_at(r, r->next_line, r->comment ? "no header after the comment line (expected %s)" : "empty file (expected %s)",
                what);
    csv_close(r);
    return -1;
}

int csv_open_buffer(csv_reader *r, const char *name, const char *data, size_t len)
{
    size_t max_field = r->max_field;
    memset(r, 0, sizeof *r);
    r->max_field = max_field;
    r->path = name;
    r->buf = xmalloc(len + 1);
    memcpy(r->buf, data, len);
    r->buf[len] = '\0';
    r->len = len;
    return opened(r);
}

void csv_close(csv_reader *r)
{
    free(r->buf);
    free(r->field);
    free(r->field_len);
    r->buf = NULL;
    r->field = NULL;
    r->field_len = NULL;
}

static void push_field(csv_reader *r, char *s, size_t n)
{
    if (r->nfields == r->cap) {
        r->cap *= 2;
        r->field = xrealloc(r->field, sizeof *r->field * r->cap);
        r->field_len = xrealloc(r->field_len, sizeof *r->field_len * r->cap);
    }
    r->field[r->nfields] = s;
    r->field_len[r->nfields] = n;
    r->nfields++;
}

/* Checks a finished field; fnum is 1-based for messages. */
static int check_field(csv_reader *r, const char *s, size_t n)
{
    if (n > r->max_field)
        return fail_at(r, r->line, "field %d is %zu bytes long (limit %zu)", r->nfields + 1, n, r->max_field);
    if (!utf8_valid(s, n)) return fail_at(r, r->line, "field %d is not valid UTF-8", r->nfields + 1);
    return 0;
}

int csv_next(csv_reader *r)
{
    if (!r->buf) { /* a failed open (its message is in r->err) or a closed reader */
        if (!r->err[0]) snprintf(r->err, sizeof r->err, "%s: not open", r->path ? r->path : "csv");
        return -1;
    }
    char *b = r->buf;
    size_t i = r->pos, n = r->len;
    r->nfields = 0;

    /* Blank lines are allowed only at the very end of the file. */
    if (i < n && (b[i] == '\n' || (b[i] == '\r' && i + 1 < n && b[i + 1] == '\n'))) {
        size_t j = i;
        while (j < n && (b[j] == '\n' || b[j] == '\r')) j++;
        if (j == n) { r->pos = n; return 0; }
        return fail_at(r, r->next_line, "empty line in the middle of the data");
    }
    if (i >= n) return 0;
    r->line = r->next_line;

    for (;;) {
        /* One field starting at i. */
        if (b[i] == '"') {
            long open_line = r->next_line;
            size_t start = ++i, w = i;
            for (;;) {
                if (i >= n) return fail_at(r, open_line, "unterminated quoted field %d", r->nfields + 1);
                char c = b[i];
                if (c == '"') {
                    if (i + 1 < n && b[i + 1] == '"') { b[w++] = '"'; i += 2; continue; }
                    i++;
                    break;
                }
                if (c == '\0') return fail_at(r, r->next_line, "NUL byte (binary data?)");
                if (c == '\n') r->next_line++;
                b[w++] = c;
                i++;
                if (w - start > r->max_field)
                    return fail_at(r, r->line, "field %d is longer than %zu bytes", r->nfields + 1, r->max_field);
            }
            size_t flen = w - start;
            if (i < n && b[i] != ',' && b[i] != '\n' && b[i] != '\r')
                return fail_at(r, r->next_line, "unexpected character after the closing quote of field %d", r->nfields + 1);
            if (check_field(r, b + start, flen)) return -1;
            push_field(r, b + start, flen);
            b[start + flen] = '\0';  /* safe: the closing quote sat at or after this byte */
        } else {
            size_t start = i;
            while (i < n) {
                char c = b[i];
                if (c == ',' || c == '\n' || c == '\r') break;
                if (c == '"') return fail_at(r, r->next_line, "quote inside unquoted field %d", r->nfields + 1);
                if (c == '\0') return fail_at(r, r->next_line, "NUL byte (binary data?)");
                i++;
            }
            if (check_field(r, b + start, i - start)) return -1;
            push_field(r, b + start, i - start);
        }
        /* Separator or end of record. The terminator is overwritten with NUL
         * only after it has been read. */
        if (i >= n) { r->pos = n; break; }
        char c = b[i];
        if (c == ',') {
            b[i] = '\0';
            i++;
            if (i >= n) { push_field(r, b + i, 0); r->pos = n; break; }
            continue;
        }
        if (c == '\r') {
            if (i + 1 >= n || b[i + 1] != '\n') return fail_at(r, r->next_line, "carriage return not followed by a line feed");
            b[i] = '\0';
            i += 2;
        } else {
            b[i] = '\0';
            i++;
        }
        r->next_line++;
        r->pos = i;
        break;
    }
    /* Unquoted fields were terminated above; make the last one NUL-terminated
     * when the file ends without a newline (buf has one spare byte). */
    if (r->pos == n) b[n] = '\0';
    return 1;
}
