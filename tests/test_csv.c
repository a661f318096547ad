/* Unit tests of the shared CSV reader: RFC 4180 quoting, line ends, BOM, the
 * '#' header line, and that every error names the file and line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/csv.h"
#include "../common/strmap.h"
#include "../common/util.h"

static void open_text(csv_reader *r, const char *text)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(csv_open_buffer(r, "t.csv", text, strlen(text)), 0);
}

static void expect_record(csv_reader *r, int n, const char *const *fields, long line)
{
    assert_int_equal(csv_next(r), 1);
    assert_int_equal(r->nfields, n);
    for (int i = 0; i < n; i++) assert_string_equal(r->field[i], fields[i]);
    assert_int_equal(r->line, line);
}

static void test_plain_lf(void **state)
{
    (void)state;
    csv_reader r;
    open_text(&r, "a,b,c\n1,2,3\n");
    expect_record(&r, 3, (const char *[]){"a", "b", "c"}, 1);
    expect_record(&r, 3, (const char *[]){"1", "2", "3"}, 2);
    assert_int_equal(csv_next(&r), 0);
    assert_null(r.comment);
    csv_close(&r);
}

static void test_crlf_bom_comment(void **state)
{
    (void)state;
    csv_reader r;
    open_text(&r, "\xEF\xBB\xBF# ferbench-predictions v1 labels=a,b\r\nimage,label\r\nx,a\r\n");
    assert_non_null(r.comment);
    assert_string_equal(r.comment, " ferbench-predictions v1 labels=a,b");
    expect_record(&r, 2, (const char *[]){"image", "label"}, 2);
    expect_record(&r, 2, (const char *[]){"x", "a"}, 3);
    assert_int_equal(csv_next(&r), 0);
    csv_close(&r);
}

static void test_quotes(void **state)
{
    (void)state;
    csv_reader r;
    open_text(&r, "\"a,b\",\"say \"\"hi\"\"\",\"\"\n\"multi\nline\",x,\"\"\"\"\nlast,1,2\n");
    expect_record(&r, 3, (const char *[]){"a,b", "say \"hi\"", ""}, 1);
    expect_record(&r, 3, (const char *[]){"multi\nline", "x", "\""}, 2);
    expect_record(&r, 3, (const char *[]){"last", "1", "2"}, 4);  /* the quoted newline counts as a line */
    assert_int_equal(csv_next(&r), 0);
    csv_close(&r);
}

static void test_empty_fields_and_no_final_newline(void **state)
{
    (void)state;
    csv_reader r;
    open_text(&r, ",a,\nx,,\"\"");
    expect_record(&r, 3, (const char *[]){"", "a", ""}, 1);
    expect_record(&r, 3, (const char *[]){"x", "", ""}, 2);
    assert_int_equal(csv_next(&r), 0);
    csv_close(&r);
}

static void test_trailing_blank_lines_ok(void **state)
{
    (void)state;
    csv_reader r;
    open_text(&r, "a\nb\n\n\r\n\n");
    expect_record(&r, 1, (const char *[]){"a"}, 1);
    expect_record(&r, 1, (const char *[]){"b"}, 2);
    assert_int_equal(csv_next(&r), 0);
    assert_int_equal(csv_next(&r), 0);  /* EOF is sticky */
    csv_close(&r);
}

static void test_empty_input(void **state)
{
    (void)state;
    csv_reader r;
    open_text(&r, "");
    assert_int_equal(csv_next(&r), 0);
    csv_close(&r);
}

/* Each bad input fails with "t.csv:LINE: ..." containing the given words. */
static void expect_error(const char *text, size_t len, const char *prefix, const char *words)
{
    csv_reader r;
    memset(&r, 0, sizeof r);
    int rc = csv_open_buffer(&r, "t.csv", text, len);
    while (rc == 0 && (rc = csv_next(&r)) == 1) rc = 0;
    assert_int_equal(rc, -1);
    if (strncmp(r.err, prefix, strlen(prefix)) != 0) fail_msg("expected prefix '%s' in '%s'", prefix, r.err);
    if (!strstr(r.err, words)) fail_msg("expected '%s' in '%s'", words, r.err);
    csv_close(&r);
}

#define BAD(text, prefix, words) expect_error(text, sizeof(text) - 1, prefix, words)

static void test_errors_name_the_line(void **state)
{
    (void)state;
    BAD("a,b\n\"open,x\n1,2\n", "t.csv:2: ", "unterminated quoted field");
    BAD("a,b\nx,y\"z\n", "t.csv:2: ", "quote inside unquoted field 2");
    BAD("a\n\"x\"y\n", "t.csv:2: ", "after the closing quote");
    BAD("a\nb\rc\n", "t.csv:2: ", "carriage return");
    BAD("a\n\nb\n", "t.csv:2: ", "empty line");
    BAD("a\nb\x00z\n", "t.csv:2: ", "NUL byte");
    BAD("a\n\"q\x00\"\n", "t.csv:2: ", "NUL byte");
    BAD("a\nok\n\xff\xfe\n", "t.csv:3: ", "not valid UTF-8");
    BAD("a\n\xc0\xaf\n", "t.csv:2: ", "not valid UTF-8");          /* overlong '/' */
    BAD("a\n\xed\xa0\x80\n", "t.csv:2: ", "not valid UTF-8");      /* surrogate */
    BAD("# head\xff\na\n", "t.csv:1: ", "not valid UTF-8");
    BAD("\x89PNG\r\n\x1a\n\x00\x00", "t.csv:1: ", "");
}

static void test_field_limit(void **state)
{
    (void)state;
    size_t n = 5000;
    char *big = xmalloc(n + 8);
    memcpy(big, "a\n", 2);
    memset(big + 2, 'x', n);
    big[n + 2] = '\n';
    expect_error(big, n + 3, "t.csv:2: ", "limit 4096");
    big[2] = '"';
    big[n + 1] = '"';
    expect_error(big, n + 3, "t.csv:2: ", "longer than 4096");
    free(big);
}

static void test_utf8_names_ok(void **state)
{
    (void)state;
    csv_reader r;
    open_text(&r, "visage_\xc3\xa9t\xc3\xa9.jpg,\xe4\xb8\xad\n");
    expect_record(&r, 2, (const char *[]){"visage_\xc3\xa9t\xc3\xa9.jpg", "\xe4\xb8\xad"}, 1);
    csv_close(&r);
}

static void test_missing_file(void **state)
{
    (void)state;
    csv_reader r = {0};
    assert_int_equal(csv_open(&r, "/nonexistent/dir/p.csv"), -1);
    assert_non_null(strstr(r.err, "/nonexistent/dir/p.csv"));
    csv_close(&r);
}

/* A header line the reader refuses fails the open itself; the failed open
 * must hold nothing, since callers may skip csv_close (bench/import.c and
 * masksynth/ingest.c did: fuzz_import found the leak). Under `make asan`,
 * LeakSanitizer fails this test if the buffers are kept. */
static void test_failed_open_holds_nothing(void **state)
{
    (void)state;
    static const char nul_header[] = "# model=a\0b\nimage,label\n", bad_utf8[] = "# \xff\nimage\n";
    csv_reader r = {0};
    assert_int_equal(csv_open_buffer(&r, "t.csv", nul_header, sizeof nul_header - 1), -1);
    assert_non_null(strstr(r.err, "t.csv:1: NUL byte"));
    assert_null(r.buf);
    assert_null(r.field);
    assert_null(r.field_len);
    assert_int_equal(csv_open_buffer(&r, "t.csv", bad_utf8, sizeof bad_utf8 - 1), -1);
    assert_non_null(strstr(r.err, "t.csv:1: header line is not valid UTF-8"));
    assert_null(r.buf);
    csv_close(&r); /* still allowed */
}

/* csv_open_header: the header record, or a message naming an empty file. */
static void test_open_header(void **state)
{
    (void)state;
    char path[] = "/tmp/ferbench-csv-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    csv_reader r = {0};
    assert_int_equal(csv_open_header(&r, path, "the header a,b"), -1);
    char want[128];
    snprintf(want, sizeof want, "%s:1: empty file (expected the header a,b)", path);
    assert_string_equal(r.err, want);
    assert_null(r.buf);
    /* only a comment line: the header is missing on line 2 */
    assert_int_equal(write(fd, "# v1\n", 5), 5);
    assert_int_equal(csv_open_header(&r, path, "the header a,b"), -1);
    snprintf(want, sizeof want, "%s:2: no header after the comment line (expected the header a,b)", path);
    assert_string_equal(r.err, want);
    assert_null(r.buf);
    assert_int_equal(ftruncate(fd, 0), 0);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(write(fd, "a,b\n1,2\n", 8), 8);
    close(fd);
    assert_int_equal(csv_open_header(&r, path, "the header a,b"), 0);
    assert_int_equal(r.nfields, 2);
    assert_string_equal(r.field[1], "b");
    assert_int_equal(csv_next(&r), 1);
    assert_string_equal(r.field[0], "1");
    csv_close(&r);
    unlink(path);
}

static void test_strmap(void **state)
{
    (void)state;
    strmap m;
    strmap_init(&m, 1);
    char names[3000][16];
    for (int i = 0; i < 3000; i++) {
        snprintf(names[i], sizeof names[i], "img%05d", i);
        assert_int_equal(strmap_put(&m, names[i], strlen(names[i]), i), -1);
    }
    for (int i = 0; i < 3000; i++) assert_int_equal(strmap_get(&m, names[i], strlen(names[i])), i);
    assert_int_equal(strmap_put(&m, "img00042", 8, 7), 42);  /* existing value wins */
    assert_int_equal(strmap_get(&m, "img3000", 7), -1);
    strmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_lf),
        cmocka_unit_test(test_crlf_bom_comment),
        cmocka_unit_test(test_quotes),
        cmocka_unit_test(test_empty_fields_and_no_final_newline),
        cmocka_unit_test(test_trailing_blank_lines_ok),
        cmocka_unit_test(test_empty_input),
        cmocka_unit_test(test_errors_name_the_line),
        cmocka_unit_test(test_field_limit),
        cmocka_unit_test(test_utf8_names_ok),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_failed_open_holds_nothing),
        cmocka_unit_test(test_open_header),
        cmocka_unit_test(test_strmap),
    };
    return cmocka_run_group_tests_name("csv", tests, NULL, NULL);
}
