/* csv.h: a strict RFC 4180 reader that reports path:line on every error.
 *
 * Accepts: "..." quoting with "" escapes (newlines inside quotes), LF or CRLF
 * line ends, a UTF-8 byte order mark, and one leading '#' comment line (the
 * ferbench header). Refuses, with a message naming the line: unterminated or
 * misplaced quotes, stray CR, NUL bytes, invalid UTF-8, fields longer than
 * max_field, and blank lines in the middle of the data.
 *
 * The file is read whole and parsed in place: field pointers stay valid until
 * the next csv_next call. */
#ifndef FB_CSV_H
#define FB_CSV_H

#include <stddef.h>

#define CSV_DEFAULT_MAX_FIELD 4096
#define CSV_DEFAULT_MAX_BYTES ((size_t)4 << 30)

typedef struct {
    const char *path;
    char *buf;
    size_t len, pos;
    long line;        /* line on which the current record starts (1-based) */
    long next_line;   /* line at pos */
    char **field;     /* NUL-terminated fields of the current record */
    size_t *field_len;
    int nfields, cap;
    char *comment;    /* the leading '#' line (always line 1) without '#' and line end, or NULL */
    size_t max_field;
    char err[640];
} csv_reader;

/* Opens path. Returns 0, or -1 with r->err set ("path: reason"); a failed
 * open holds no memory (csv_close is then optional). */
int csv_open(csv_reader *r, const char *path);
/* Parses a copy of the given bytes; name is used in messages. */
int csv_open_buffer(csv_reader *r, const char *name, const char *data, size_t len);
/* csv_open, then the first record (the header) into r->field: 0, or -1 with
 * r->err, where an empty file gives "path:1: empty file (expected WHAT)".
 * A failed call holds no memory. */
int csv_open_header(csv_reader *r, const char *path, const char *what);
/* 1: a record is in r->field; 0: end of file; -1: error in r->err (also after
 * a failed open, whose message stays). */
int csv_next(csv_reader *r);
void csv_close(csv_reader *r);

/* Formats "path:line: message" into r->err for the current record (callers
 * use it for their own semantic errors) and returns -1. */
int csv_fail(csv_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
