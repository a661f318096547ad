#include "checks.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../common/cli.h"
#include "../common/csv.h"
#include "../common/numfmt.h"
#include "../common/sha256.h"
#include "../common/strmap.h"
#include "../common/util.h"

extern const char protocol_rafdb[], protocol_ferplus_label_csv[], protocol_ferplus_fer2013new[];

const char *protocol_builtin(const char *kind, const char *vote_source, const char **name)
{
    if (!strcmp(kind, "rafdb")) return *name = "manifests/rafdb.protocol.csv", protocol_rafdb;
    if (!strcmp(kind, "ferplus") && vote_source && !strcmp(vote_source, "label_csv"))
        return *name = "manifests/ferplus-label_csv.protocol.csv", protocol_ferplus_label_csv;
    if (!strcmp(kind, "ferplus")) return *name = "manifests/ferplus-fer2013new.protocol.csv", protocol_ferplus_fer2013new;
    return NULL;
}

static int split_index(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, split_name[i])) return i;
    return -1;
}

long protocol_check(const dataset *d, const char *name, const char *text, FILE *out, char **json, char *err,
                    size_t errlen)
{
    long expected[3][NCLASSES], found[3][NCLASSES];
    int declared[3] = {0};
    memset(expected, 0, sizeof expected);
    memset(found, 0, sizeof found);
    long line_of[3][NCLASSES] = {{0}};
    csv_reader r = {0};
    int got = csv_open_buffer(&r, name, text, strlen(text)) ? -1 : csv_next(&r);
    if (got < 0) { /* the reader's own message (a bad header line, invalid UTF-8...) */
        snprintf(err, errlen, "%s", r.err);
        csv_close(&r);
        return -1;
    }
    if (got != 1 || r.nfields != 3 || strcmp(r.field[0], "split") || strcmp(r.field[1], "label") ||
        strcmp(r.field[2], "count")) {
        snprintf(err, errlen, "%s:1: expected the header split,label,count", name);
        csv_close(&r);
        return -1;
    }
    while ((got = csv_next(&r)) == 1) {
        int s = r.nfields == 3 ? split_index(r.field[0]) : -1, c = r.nfields == 3 ? class_index(r.field[1]) : -1;
        long n;
        if (s < 0 || c < 0 || cli_parse_long(r.field[2], 0, LONG_MAX, &n)) { /* an empty count too */
            snprintf(err, errlen, "%s:%ld: expected <train|val|test>,<label>,<count>", name, r.line);
            csv_close(&r);
            return -1;
        }
        if (line_of[s][c]) { /* the later line would have won silently */
            snprintf(err, errlen, "%s:%ld: %s,%s was already given on line %ld", name, r.line, split_name[s],
                     class_name[c], line_of[s][c]);
            csv_close(&r);
            return -1;
        }
        line_of[s][c] = r.line;
        expected[s][c] = n;
        declared[s] = 1;
    }
    csv_close(&r);
    if (got < 0) {
        snprintf(err, errlen, "%s", r.err);
        return -1;
    }
    long missing = 0, unreadable = 0, problems = 0;
    for (long i = 0; i < d->n; i++) {
        found[d->rec[i].official][d->rec[i].label]++;
        missing += d->rec[i].status == ST_MISSING;
        unreadable += d->rec[i].status == ST_BAD_IMAGE;
    }
    /* The report as JSON (json_string: the file name may hold quotes or backslashes). */
    char *js = NULL;
    size_t jslen = 0;
    FILE *jf = open_memstream(&js, &jslen);
    if (!jf) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    fputs("{\"file\": ", jf);
    json_string(jf, name);
    fputs(", \"mismatches\": [", jf);
    fprintf(out, "protocol %s:\n", name);
    for (int s = 0; s < 3; s++) {
        if (!declared[s]) continue;
        for (int c = 0; c < NCLASSES; c++) {
            if (found[s][c] == expected[s][c]) continue;
            fprintf(out, "  %s %-9s expected %6ld, the label files list %6ld (%+ld)\n", split_name[s], class_name[c],
                    expected[s][c], found[s][c], found[s][c] - expected[s][c]);
            fprintf(jf, "%s{\"split\": \"%s\", \"label\": \"%s\", \"expected\": %ld, \"found\": %ld}",
                    problems ? ", " : "", split_name[s], class_name[c], expected[s][c], found[s][c]);
            problems++;
        }
    }
    fprintf(jf, "], \"missing\": %ld, \"unreadable\": %ld, \"extra\": %ld}", missing, unreadable, d->nextra);
    if (fclose(jf) || !js) {
        free(js);
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    *json = js;
    long shown = 0;
    for (long i = 0; i < d->n && shown < 10; i++)
        if (d->rec[i].status != ST_OK) {
            fprintf(out, "  %s %s: %s\n", d->rec[i].name, status_name[d->rec[i].status], d->rec[i].message);
            shown++;
        }
    for (long i = 0; i < d->nextra && i < 10; i++) fprintf(out, "  extra file %s\n", d->extra[i]);
    fprintf(out, "  %ld count mismatch%s, %ld missing, %ld unreadable, %ld extra file%s\n", problems,
            problems == 1 ? "" : "es", missing, unreadable, d->nextra, d->nextra == 1 ? "" : "s");
    return problems + missing + unreadable + d->nextra;
}

/* ---- manifests ----------------------------------------------------------- */

/* Finds "key=value" in the header line. */
static int header_field(const char *line, const char *key, char *out, size_t len)
{
    size_t kl = strlen(key);
    for (const char *p = line; (p = strstr(p, key)); p += kl) {
        if ((p == line || p[-1] == ' ') && p[kl] == '=') {
            const char *v = p + kl + 1, *e = strchr(v, ' ');
            size_t n = e ? (size_t)(e - v) : strlen(v);
            if (n >= len) return -1;
            memcpy(out, v, n);
            out[n] = '\0';
            return 0;
        }
    }
    return -1;
}

int manifest_read_header(const char *path, manifest_header *h, char *err, size_t errlen)
{
    size_t len;
    char *buf = read_file(path, &len, (size_t)1 << 30, err, errlen);
    if (!buf) return -1;
    memset(h, 0, sizeof *h);
    int rc = -1;
    /* The checksum line covers every byte before it. */
    char *last = len > 1 ? buf + len - 2 : buf;
    while (last > buf && last[-1] != '\n') last--;
    char hex[65];
    sha256_hex(buf, (size_t)(last - buf), hex);
    if (strncmp(last, "# sha256=", 9) || strncmp(last + 9, hex, 64)) {
        snprintf(err, errlen, "%s: the checksum line is missing or does not match the contents (edited or truncated?)",
                 path);
        goto out;
    }
    char *nl = strchr(buf, '\n');
    if (strncmp(buf, "# masksynth-manifest v1 ", 24) || !nl) {
        snprintf(err, errlen, "%s:1: not a masksynth manifest v1", path);
        goto out;
    }
    *nl = '\0';
    char seed[32], bseed[32], bsize[16], vf[32];
    if (header_field(buf, "dataset", h->dataset, sizeof h->dataset) || header_field(buf, "kind", h->kind, sizeof h->kind) ||
        header_field(buf, "val", h->val, sizeof h->val) || header_field(buf, "assign", h->assign, sizeof h->assign) ||
        header_field(buf, "seed", seed, sizeof seed) || header_field(buf, "bank_seed", bseed, sizeof bseed) ||
        header_field(buf, "bank_size", bsize, sizeof bsize) || header_field(buf, "val_fraction", vf, sizeof vf)) {
        snprintf(err, errlen, "%s:1: header misses one of dataset, kind, seed, val, val_fraction, assign, bank_seed, bank_size", path);
        goto out;
    }
    /* Every value is checked as `init` checks its options: a manifest comes from elsewhere, and a value read
     * loosely (strtoull("abc") is 0) would re-create another split without a word. */
    long seed_v, bseed_v, size;
    const char *key = NULL, *value = NULL, *want = NULL;
    if (cli_choice_index("rafdb|ferplus|csv", h->kind) < 0)
        key = "kind", value = h->kind, want = "rafdb, ferplus or csv";
    else if (cli_choice_index("stratified|official", h->val) < 0)
        key = "val", value = h->val, want = "stratified or official";
    else if (cli_choice_index("identity|pattern|none", h->assign) < 0)
        key = "assign", value = h->assign, want = "identity, pattern or none";
    else if (cli_parse_long(seed, 0, LONG_MAX, &seed_v))
        key = "seed", value = seed, want = "a decimal integer from 0 to 2^63-1";
    else if (cli_parse_long(bseed, 0, LONG_MAX, &bseed_v))
        key = "bank_seed", value = bseed, want = "a decimal integer from 0 to 2^63-1";
    else if (cli_parse_long(bsize, 4, 4096, &size))
        key = "bank_size", value = bsize, want = "an integer from 4 to 4096";
    else if (strcmp(h->val, "official") ? cli_parse_double(vf, 1e-6, 0.9, &h->val_fraction) != 0 : vf[0] != '\0')
        key = "val_fraction", value = vf, want = "from 1e-6 to 0.9 with val=stratified, empty with val=official";
    if (key) {
        snprintf(err, errlen, "%s:1: %s=%s is not valid (%s)", path, key, value, want);
        goto out;
    }
    h->seed = (unsigned long long)seed_v;
    h->bank_seed = (unsigned long long)bseed_v;
    h->bank_size = (int)size;
    rc = 0;
out:
    free(buf);
    return rc;
}

long manifest_apply(dataset *d, groups *g, const pattern *bank, int nbank, const char *path, FILE *out, char *err,
                    size_t errlen)
{
    csv_reader r = {0};
    long diffs = 0;
    if (csv_open_header(&r, path, "the header image,label,split,group,pattern")) {
        snprintf(err, errlen, "%s", r.err);
        return -1;
    }
    strmap where, gmap, pmap;
    strmap_init(&where, (size_t)d->n);
    strmap_init(&gmap, 1024);
    strmap_init(&pmap, (size_t)nbank);
    for (long i = 0; i < d->n; i++) strmap_put(&where, d->rec[i].name, strlen(d->rec[i].name), i);
    for (int i = 0; i < nbank; i++) strmap_put(&pmap, bank[i].stable_id, strlen(bank[i].stable_id), i);
    char *seen = xcalloc((size_t)d->n + 1, 1);
    memset(g, 0, sizeof *g);
    g->name = xmalloc(sizeof *g->name * (size_t)(d->n + 1));
    g->source = xmalloc(sizeof *g->source * (size_t)(d->n + 1));
    int got;
    while ((got = csv_next(&r)) == 1) {
        if (r.nfields == 1 && !strncmp(r.field[0], "# sha256=", 9)) break;  /* the checksum line ends it */
        if (r.nfields != 5) {
            got = csv_fail(&r, "expected image,label,split,group,pattern");
            break;
        }
        long i = strmap_get(&where, r.field[0], r.field_len[0]);
        if (i < 0) {
            if (diffs++ < 10) fprintf(out, "  %s: in the manifest, not in this copy\n", r.field[0]);
            continue;
        }
        record *x = &d->rec[i];
        /* A second row for an image is ambiguous, and each row may open a group: without this check a
         * manifest listing an image more often than the copy has images overflowed g (fuzz_manifest). */
        if (seen[i]) {
            got = csv_fail(&r, "%.120s is listed twice", x->name);
            break;
        }
        seen[i] = 1;
        if (x->status != ST_OK && diffs++ < 10)
            fprintf(out, "  %s: in the manifest, %s in this copy\n", x->name, status_name[x->status]);
        if (class_index(r.field[1]) != x->label) {
            if (diffs++ < 10)
                fprintf(out, "  %s: label %s here, %s in the manifest\n", x->name, class_name[x->label], r.field[1]);
        }
        x->split = SPLIT_NONE;
        for (int s = 0; s < 3; s++)
            if (!strcmp(r.field[2], split_name[s])) x->split = s;
        if (x->split == SPLIT_NONE && *r.field[2]) { /* a typo would have left the image out of every split */
            got = csv_fail(&r, "split '%.40s' is not train, val, test or empty", r.field[2]);
            break;
        }
        if (x->status != ST_OK) x->split = SPLIT_NONE;
        x->group = -1;
        if (*r.field[3]) {
            long gi = strmap_get(&gmap, r.field[3], r.field_len[3]);
            if (gi < 0) {
                gi = g->n;
                g->name[g->n] = xstrdup(r.field[3]);
                g->source[g->n++] = "manifest";
                strmap_put(&gmap, g->name[gi], strlen(g->name[gi]), gi);
            }
            x->group = gi;
        }
        x->pattern = -1;
        if (*r.field[4] && x->split != SPLIT_NONE) {
            long pi = strmap_get(&pmap, r.field[4], r.field_len[4]);
            if (pi < 0) {
                got = csv_fail(&r, "pattern '%.80s' is not in the bank the header describes", r.field[4]);
                break;
            }
            x->pattern = (int)pi;
        }
    }
    if (got < 0) snprintf(err, errlen, "%s", r.err);
    for (long i = 0; got >= 0 && i < d->n; i++)
        if (!seen[i]) {
            d->rec[i].split = SPLIT_NONE;
            d->rec[i].pattern = -1;
            if (diffs++ < 10) fprintf(out, "  %s: in this copy, not in the manifest (left out of every split)\n", d->rec[i].name);
        }
    free(seen);
    strmap_free(&where);
    strmap_free(&gmap);
    strmap_free(&pmap);
    csv_close(&r);
    if (got >= 0) fprintf(out, "manifest %s: %ld image%s differ\n", path, diffs, diffs == 1 ? "" : "s");
    return got < 0 ? -1 : diffs;
}
