/* Unit tests of engine/data.c: bilinear resize (by hand and against PyTorch),
 * normalisation, grey -> 3 copies, area-averaged occlusion targets, landmark
 * heatmaps, horizontal flip (pixels, alpha, landmark permutation), the epoch
 * plan, the threaded loader (same bytes at 1 and 4 threads, drop_last, stop
 * mid-epoch, errors), and data_open_split on small databases built here with
 * the rows masksynth --split would write (absolute and relative render paths,
 * missing renders, failed renders, several assignments, missing files). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/image.h"
#include "../common/util.h"
#include "../db/db.h"
#include "../engine/data.h"

static char g_dir[64];

/* ------------------------------------------------------------------------- */
/* Fixtures */

static char *path_in(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *path_in(const char *fmt, ...)
{
    char rel[512], *p = xmalloc(1024);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    snprintf(p, 1024, "%s/%s", g_dir, rel);
    return p;
}

/* Pseudo-random pixels from seed (an LCG: the same bytes everywhere). */
static void fill_random(image *img, int w, int h, int c, uint32_t seed)
{
    assert_int_equal(image_alloc(img, w, h, c), 0);
    for (size_t i = 0; i < (size_t)w * h * c; i++) {
        seed = seed * 1664525u + 1013904223u;
        img->px[i] = (uint8_t)(seed >> 24);
    }
}

static void save_png(const char *path, const image *img)
{
    char err[512];
    if (image_save_png(path, img, err, sizeof err)) fail_msg("%s", err);
}

static void mirror_image(image *img)
{
    for (int y = 0; y < img->h; y++)
        for (int a = 0, b = img->w - 1; a < b; a++, b--)
            for (int k = 0; k < img->c; k++) {
                uint8_t *p = img->px + ((size_t)y * img->w) * img->c;
                uint8_t t = p[a * img->c + k];
                p[a * img->c + k] = p[b * img->c + k];
                p[b * img->c + k] = t;
            }
}

/* The images of the fixture dataset, as masksynth init and --split would leave them. */
#define NFX 15
typedef struct {
    char name[32];
    const char *split;
    int w, h, c, label, jpeg;
    double pts[DATA_NPOINTS][2];
    char out[512], alpha[512];     /* absolute file paths */
    char stored_out[512], stored_alpha[512]; /* as renders rows hold them */
} fx_image;
static fx_image fx[NFX];

static void make_files(void)
{
    char *dirs[4] = {path_in("db"), path_in("masked/train"), path_in("masked/val"), path_in("masked/test")};
    for (int d = 0; d < 4; d++) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dirs[d]);
        assert_int_equal(system(cmd), 0);
        free(dirs[d]);
    }
    for (int i = 0; i < NFX; i++) {
        fx_image *f = &fx[i];
        int k = i < 10 ? i : i < 13 ? i - 10 : i - 13;
        f->split = i < 10 ? "train" : i < 13 ? "val" : "test";
        snprintf(f->name, sizeof f->name, "%s_%02d.jpg", f->split, k);
        f->w = 10 + i % 4;
        f->h = 9 + (i * 3) % 5;
        f->c = i % 3 == 0 ? 1 : 3;
        f->label = i % 7;
        f->jpeg = i == 4;
        for (int p = 0; p < DATA_NPOINTS; p++) {
            f->pts[p][0] = fmod(p * 1.37 + i, f->w - 1);
            f->pts[p][1] = fmod(p * 0.71 + 2.0 * i, f->h - 1);
        }
        const char *ext = f->jpeg ? "jpg" : "png";
        snprintf(f->out, sizeof f->out, "%s/masked/%s/%s_%02d.%s", g_dir, f->split, f->split, k, ext);
        snprintf(f->alpha, sizeof f->alpha, "%s/masked/%s/%s_%02d.alpha.png", g_dir, f->split, f->split, k);
        /* train: absolute; val: relative to the database's folder; test: relative to the folder it ran in */
        if (!strcmp(f->split, "train")) {
            memcpy(f->stored_out, f->out, sizeof f->out);
            memcpy(f->stored_alpha, f->alpha, sizeof f->alpha);
        } else {
            const char *up = strcmp(f->split, "val") ? "" : "../";
            snprintf(f->stored_out, sizeof f->stored_out, "%smasked/%s/%s_%02d.%s", up, f->split, f->split, k, ext);
            snprintf(f->stored_alpha, sizeof f->stored_alpha, "%smasked/%s/%s_%02d.alpha.png", up, f->split, f->split,
                     k);
        }
        image img, alpha;
        char err[512];
        fill_random(&img, f->w, f->h, f->c, 100u + (uint32_t)i);
        fill_random(&alpha, f->w, f->h, 1, 900u + (uint32_t)i);
        if (f->jpeg) assert_int_equal(image_save_jpeg(f->out, &img, 95, err, sizeof err), 0);
        else save_png(f->out, &img);
        save_png(f->alpha, &alpha);
        image_free(&img);
        image_free(&alpha);
    }
}

enum { V_DROP_RENDER = 1, V_FAILED = 2, V_TWO_MODES = 4, V_TWO_DATASETS = 8, V_CONTEMPT = 16, V_MISSING_FILE = 32 };

static void exec_sql(sqlite3 *db, const char *sql)
{
    char err[512];
    if (db_exec(db, sql, err, sizeof err)) fail_msg("%s", err);
}

/* A database with the fixture's rows, changed by the variant flags; returns its path (free it). */
static char *build_db(const char *leaf, int variant)
{
    char *path = path_in("db/%s.sqlite", leaf), err[512], sql[1024];
    unlink(path);
    sqlite3 *db;
    if (db_open(path, &db, err, sizeof err)) fail_msg("%s", err);
    exec_sql(db, "BEGIN");
    snprintf(sql, sizeof sql, "INSERT INTO datasets(id, name, kind, root) VALUES (1, 'fx', 'rafdb', '%s')", g_dir);
    exec_sql(db, sql);
    if (variant & V_TWO_DATASETS) exec_sql(db, "INSERT INTO datasets(id, name, kind, root) VALUES (2, 'other', 'csv', '/x')");
    exec_sql(db, "INSERT INTO patterns(id, stable_id, type, style, colour, texture) "
                 "VALUES (1, 'p1', 'surgical', 'full', '#aabbcc', 'plain')");
    /* Not part of any split's items: an image that is missing on disk, and one outside the split recipe. */
    exec_sql(db, "INSERT INTO images(id, dataset_id, name, rel_path, label, official_split, benchmark_split, status) "
                 "VALUES (100, 1, 'train_99.jpg', 'x', 0, 'train', 'train', 'missing')");
    exec_sql(db, "INSERT INTO images(id, dataset_id, name, rel_path, label, official_split) "
                 "VALUES (101, 1, 'unsplit.jpg', 'y', 0, 'train')");
    sqlite3_stmt *im, *as, *re;
    assert_int_equal(db_prepare(db, "INSERT INTO images(id, dataset_id, name, rel_path, width, height, label, "
                                    "official_split, benchmark_split) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?)", &im, err,
                                sizeof err), 0);
    assert_int_equal(db_prepare(db, "INSERT INTO assignments(id, image_id, pattern_id, mode, seed) VALUES (?, ?, 1, ?, ?)",
                                &as, err, sizeof err), 0);
    assert_int_equal(db_prepare(db, "INSERT INTO renders(image_id, assignment_id, status, landmarks, visibility, coverage, "
                                    "output_path, output_hash, alpha_path, alpha_hash) VALUES (?, ?, ?, ?, ?, 0.3, ?, 'h', ?, 'h')",
                                &re, err, sizeof err), 0);
    char vis[69];
    memset(vis, '1', 68);
    vis[68] = '\0';
    for (int i = 0; i < NFX; i++) {  /* ids in reverse name order: the items must come sorted by name */
        fx_image *f = &fx[i];
        int id = NFX - i;
        sqlite3_bind_int(im, 1, id);
        sqlite3_bind_text(im, 2, f->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(im, 3, f->name, -1, SQLITE_STATIC);
        sqlite3_bind_int(im, 4, f->w);
        sqlite3_bind_int(im, 5, f->h);
        sqlite3_bind_int(im, 6, (variant & V_CONTEMPT) && i == 2 ? 7 : f->label);
        sqlite3_bind_text(im, 7, f->split, -1, SQLITE_STATIC);
        sqlite3_bind_text(im, 8, f->split, -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(im), SQLITE_DONE);
        sqlite3_reset(im);
        char lm[4096];
        size_t used = 0;
        for (int p = 0; p < DATA_NPOINTS; p++)
            used += (size_t)snprintf(lm + used, sizeof lm - used, "%s[%.17g, %.17g]", p ? ", " : "[", f->pts[p][0],
                                     f->pts[p][1]);
        snprintf(lm + used, sizeof lm - used, "]");
        for (int m = 0; m < ((variant & V_TWO_MODES) ? 2 : 1); m++) {
            int aid = id + 1000 * m;
            sqlite3_bind_int(as, 1, aid);
            sqlite3_bind_int(as, 2, id);
            sqlite3_bind_text(as, 3, m ? "pattern" : "identity", -1, SQLITE_STATIC);
            sqlite3_bind_int(as, 4, m ? 2 : 1);
            assert_int_equal(sqlite3_step(as), SQLITE_DONE);
            sqlite3_reset(as);
            if ((variant & V_DROP_RENDER) && i == 3) continue;
            int failed = (variant & V_FAILED) && i == 5;
            sqlite3_bind_int(re, 1, id);
            sqlite3_bind_int(re, 2, aid);
            sqlite3_bind_text(re, 3, failed ? "failed" : "ok", -1, SQLITE_STATIC);
            for (int c = 4; c <= 7; c++) sqlite3_bind_null(re, c);
            if (!failed) {
                sqlite3_bind_text(re, 4, lm, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(re, 5, vis, -1, SQLITE_STATIC);
                sqlite3_bind_text(re, 6, (variant & V_MISSING_FILE) && i == 7 ? "/nonexistent/train_07.png" : f->stored_out,
                                  -1, SQLITE_STATIC);
                sqlite3_bind_text(re, 7, f->stored_alpha, -1, SQLITE_STATIC);
            }
            assert_int_equal(sqlite3_step(re), SQLITE_DONE);
            sqlite3_reset(re);
        }
    }
    sqlite3_finalize(im);
    sqlite3_finalize(as);
    sqlite3_finalize(re);
    exec_sql(db, "COMMIT");
    db_close(db);
    return path;
}

static int setup(void **state)
{
    (void)state;
    strcpy(g_dir, "/tmp/test_data.XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    make_files();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static data_item item_for(const char *image_path, const char *alpha_path)
{
    data_item it = {.name = "fixture", .image_path = (char *)image_path, .alpha_path = (char *)alpha_path};
    return it;
}

/* Inverse of the normalisation: the resized 0..255 value. */
static float denorm(float x, int c) { return (x * data_std[c] + data_mean[c]) * 255.0f; }

/* ------------------------------------------------------------------------- */
/* Resize and normalisation */

static void test_resize_upsample_2x(void **state)
{
    (void)state;
    /* 2x2 -> 4x4: source positions 0 (clamped from -0.25), 0.25, 0.75, 1.25 (upper neighbour clamped) */
    const uint8_t px[4] = {0, 100, 200, 40};
    float out[16];
    data_resize_bilinear(px, 2, 2, 1, 0, 4, out);
    const float row0[4] = {0, 25, 75, 100}, row3[4] = {200, 160, 80, 40};
    for (int x = 0; x < 4; x++) {
        assert_float_equal(out[x], row0[x], 1e-4);
        assert_float_equal(out[12 + x], row3[x], 1e-4);
    }
    /* row 1 = 0.75 row0 + 0.25 row3, row 2 = 0.25 row0 + 0.75 row3 */
    for (int x = 0; x < 4; x++) {
        assert_float_equal(out[4 + x], 0.75f * row0[x] + 0.25f * row3[x], 1e-4);
        assert_float_equal(out[8 + x], 0.25f * row0[x] + 0.75f * row3[x], 1e-4);
    }
    assert_float_equal(out[5], 0.75 * 25 + 0.25 * 160, 1e-4); /* 58.75 */
}

static void test_resize_downsample_fractional(void **state)
{
    (void)state;
    /* 5 -> 3 (scale 5/3): sources 1/3, 2, 11/3: [0 30 60 90 120] -> [10, 60, 110], in both axes */
    uint8_t px[25], col[25];
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 5; x++) {
            px[y * 5 + x] = (uint8_t)(30 * x);
            col[y * 5 + x] = (uint8_t)(30 * y);
        }
    float out[9], out2[9];
    data_resize_bilinear(px, 5, 5, 1, 0, 3, out);
    data_resize_bilinear(col, 5, 5, 1, 0, 3, out2);
    const float want[3] = {10, 60, 110};
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 3; x++) {
            assert_float_equal(out[y * 3 + x], want[x], 1e-4);
            assert_float_equal(out2[y * 3 + x], want[y], 1e-4);
        }
    /* one channel of an interleaved RGB image: channel 1 holds the ramp, the others noise */
    uint8_t rgb[75];
    for (int i = 0; i < 25; i++) {
        rgb[3 * i] = (uint8_t)(i * 97);
        rgb[3 * i + 1] = px[i];
        rgb[3 * i + 2] = (uint8_t)(i * 13);
    }
    data_resize_bilinear(rgb, 5, 5, 3, 1, 3, out2);
    assert_memory_equal(out, out2, sizeof out);
}

/* data_resize_bilinear blends each source row across once and reuses it for every output row it serves
 * (a two-row cache). The reference here blends per output pixel, in the same order of operations and with
 * weights derived the same way: the floats must be equal bit for bit, up and down, square or not, grey or
 * one channel of RGB, including sources of one row or column and outputs that reuse no row. */
static void ref_source(float scale, int d, int n, int *i0, int *i1, float *l1)
{
    double f = scale * (d + 0.5) - 0.5;
    if (f < 0) f = 0;
    *i0 = (int)f, *i1 = *i0 + (*i0 < n - 1);
    float l = (float)(f - *i0);
    *l1 = l < 0 ? 0 : l > 1 ? 1 : l;
}

static void resize_reference(const uint8_t *px, int w, int h, int nc, int c, int S, float *out)
{
    for (int y = 0; y < S; y++) {
        int y0, y1, x0, x1;
        float ly, lx;
        ref_source((float)h / (float)S, y, h, &y0, &y1, &ly);
        for (int x = 0; x < S; x++) {
            ref_source((float)w / (float)S, x, w, &x0, &x1, &lx);
            const uint8_t *r0 = px + (size_t)y0 * w * nc + c, *r1 = px + (size_t)y1 * w * nc + c;
            float t0 = (float)r0[x0 * nc] * (1.0f - lx) + (float)r0[x1 * nc] * lx;
            float t1 = (float)r1[x0 * nc] * (1.0f - lx) + (float)r1[x1 * nc] * lx;
            out[(size_t)y * S + x] = t0 * (1.0f - ly) + t1 * ly;
        }
    }
}

static void test_resize_row_cache_is_exact(void **state)
{
    (void)state;
    const int sizes[][3] = {{100, 100, 224}, {48, 48, 224}, {7, 5, 9}, {5, 7, 3}, {1, 1, 4}, {1, 9, 5}, {9, 1, 5},
                            {300, 200, 224}, {224, 224, 224}, {2, 2, 1}, {97, 113, 64}, {640, 480, 33}};
    uint64_t seed = 7;
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        const int w = sizes[t][0], h = sizes[t][1], S = sizes[t][2];
        for (int nc = 1; nc <= 3; nc += 2) {
            uint8_t *px = malloc((size_t)w * h * nc);
            for (size_t i = 0; i < (size_t)w * h * nc; i++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                px[i] = (uint8_t)(seed >> 56);
            }
            float *got = malloc(sizeof(float) * S * S), *want = malloc(sizeof(float) * S * S);
            for (int c = 0; c < nc; c++) {
                data_resize_bilinear(px, w, h, nc, c, S, got);
                resize_reference(px, w, h, nc, c, S, want);
                if (memcmp(got, want, sizeof(float) * S * S) != 0)
                    fail_msg("resize %dx%d (%d channels, channel %d) -> %d differs from the per-pixel blend", w, h,
                             nc, c, S);
            }
            free(px);
            free(got);
            free(want);
        }
    }
}

/* F.interpolate(t, size=(S, S), mode='bilinear', align_corners=False) of the 7x5 RGB image
 * v(x, y, c) = (37x + 91y + 53c) % 256 as float32 [1,3,5,7], then (r/255 - mean)/std, flattened [3,S,S].
 * Made with PyTorch 1.13 (/usr/bin/python3):
 *   img = torch.tensor([[[(x*37+y*91+c*53)%256 for c in range(3)] for x in range(7)] for y in range(5)],
 *                      dtype=torch.float32).permute(2,0,1)[None]
 *   r = F.interpolate(img, size=(S,S), mode='bilinear', align_corners=False)
 *   x = (r/255 - torch.tensor([0.485,0.456,0.406]).view(1,3,1,1)) / torch.tensor([0.229,0.224,0.225]).view(1,3,1,1)
 *   print(', '.join('%.9g' % v for v in x.flatten().tolist())) */
static const float torch_s4[48] = {
    -1.68550396, -0.57667613, 0.53215158,  1.0929873,  0.262436897, -0.272711813, 0.836116016, -0.795016766,
    -0.529583097, -1.0647316, 0.044096116, 1.15292406, -0.225618675, 0.883209109, -1.36441481,  -0.735080123,
    -0.665791333, 0.467787206, 1.11116934, -0.276260465, 0.695378244, 0.77853626,  -0.538865507, 0.244572878,
    -0.114320777, -0.031162452, 1.10241592, 0.485294223, 0.826680601, 1.47006297,  -0.827731013, -0.0442927703,
    0.483137369,  1.05394351,  2.18248391,  -0.593115389, 0.792505622, -0.867625237, 0.260915101, 1.38945544,
    -0.0135947606, 1.11494553, -0.196601287, 0.583355308, 1.96897602, -0.806623042, -0.166100129, 0.892723322};
static const float torch_s9[243] = {
    -2.11790395, -1.69549346, -1.20268095, -0.70986867, -0.217056304, 0.275756061, 0.768568337, 1.26138079, 1.6837914,
    -1.59845304, -1.17604244, -0.683230102, -0.190417841, 0.30239439, 0.795206904, 0.476178914, 0.319519162, 0.74192971,
    -0.73270154, -0.310290962, 0.182521388, 0.675333619, 1.16814613, 1.66095841, -0.011136828, -1.25024986, -0.827839375,
    0.133050054, 0.555460393, 0.182309791, -0.407331496, 0.085480608, 0.578293085, -0.281961322, -0.871602237,
    -0.449191779, 0.998800993, 1.4212116, -0.0343924016, -1.97710025, -1.48428786, -0.991475642, -0.498663127,
    -0.00585075561, 0.416559935, -0.57096827, -0.148557678, -0.521708012, -1.11134875, -0.618536532, -0.125724018,
    0.367088348, 0.859900594, 1.28231144, -1.65363264, -1.23122203, -0.738409638, -0.245597288, 0.247215077,
    0.361167967, 0.745735049, 1.23854756, 1.66095781, -0.787881136, -0.365470558, 0.127341807, 0.620154023, 1.1129663,
    -0.667374432, -0.824034214, -0.331221849, 0.0911886021, -0.268430561, 0.153980136, 0.646792352, 1.13960493,
    1.63241684, -1.28449965, -1.76589513, -1.27308285, -0.850672126, -1.10784304, -0.676003814, -0.172191158,
    0.331621736, 0.835434258, 1.33924699, 1.84305954, 0.852940977, -1.70308125, -0.576797307, -0.14495796, 0.358854681,
    0.862667203, 1.36647964, 0.70834595, 0.88017416, 0.388032734, -1.17203534, 0.308279067, 0.740118146, 1.24393094,
    1.74774349, 2.25155592, -0.343154848, -0.724634528, -0.386814028, -0.286959112, 1.19335532, 0.297255665,
    0.137099057, 0.640911579, 1.14472401, -0.288039982, -0.337534696, 0.16627793, 0.598117292, 2.07843113, -0.477590978,
    -1.46770895, -0.963896513, -0.460083723, 0.0437287875, 0.54754144, 1.05135393, 1.48319304, 0.473622352,
    -0.422476381, -0.58263272, -0.078820087, 0.424992412, 0.928804934, 1.43261766, 1.10646832, -0.121615693,
    -0.633208454, -0.201369092, 0.302443415, 0.695594311, 0.812091053, 1.31590378, 1.81971633, 0.995590329, -1.2284466,
    0.251867801, 0.683707178, 1.18751967, 1.02736247, -0.792717516, -0.288904905, 0.214907601, 0.220743537,
    -0.343370378, 0.782913268, 1.21475255, 1.71856511, 1.22642362, -1.75560212, -1.25178957, -0.747976959,
    -0.244164303, 0.187675059, 0.0430501848, 0.472970426, 0.97454381, 1.47611737, 1.97769082, 2.4792645, 0.502018571,
    -0.979462564, -0.549542367, 0.571735859, 1.00165594, 0.842211127, 0.517511487, 1.01908493, 1.52065849, 0.369685888,
    -0.450776964, -0.0208568573, 1.45287848, 1.88279855, 0.621656179, -1.08016479, -0.578591287, -0.0770176798,
    0.149131492, 0.430365801, 0.86028564, 0.350965679, 0.780885875, 0.180762216, -0.694785535, -0.193212166,
    0.308361322, 0.809935093, 1.31150842, 1.74142849, -1.24670994, -0.816789865, -0.315216392, 0.186356977,
    0.687930763, 1.18950355, 1.69107723, 2.19265079, 2.62257051, -0.365567356, 0.0643527508, 0.565926373, 1.0675,
    1.56907308, 0.142675906, 0.0934008807, 0.59497422, 1.02489436, 0.51557529, 0.945495367, 1.22672892, 1.45287764,
    1.95445108, -0.628727138, -1.00851083, -0.506937385, -0.0770172849, 1.39671791, 1.82663798, 1.00617421,
    -0.144798368, 0.356775016, -0.298432767, -0.127368242, 0.374205261, 0.804125369, 1.92540324, 2.35532331,
    0.873841584, -1.10340345, -0.601829946, -0.100256473, 0.40131703, 0.902890265, 1.33281064};

static void test_resize_matches_pytorch(void **state)
{
    (void)state;
    image img;
    assert_int_equal(image_alloc(&img, 7, 5, 3), 0);
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 7; x++)
            for (int c = 0; c < 3; c++) img.px[(y * 7 + x) * 3 + c] = (uint8_t)((x * 37 + y * 91 + c * 53) % 256);
    char *path = path_in("torch.png");
    save_png(path, &img);
    image_free(&img);
    data_item it = item_for(path, NULL);
    float x4[48], x9[243];
    char err[512];
    assert_int_equal(data_make_sample(&it, 4, 1, 0, x4, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(data_make_sample(&it, 9, 1, 0, x9, NULL, NULL, err, sizeof err), 0);
    for (int i = 0; i < 48; i++) assert_float_equal(x4[i], torch_s4[i], 2e-6);
    for (int i = 0; i < 243; i++) assert_float_equal(x9[i], torch_s9[i], 2e-6);
    free(path);
}

static void test_normalisation(void **state)
{
    (void)state;
    image img;
    assert_int_equal(image_alloc(&img, 6, 4, 3), 0);
    for (int i = 0; i < 24; i++) {
        img.px[3 * i] = 255;
        img.px[3 * i + 1] = 0;
        img.px[3 * i + 2] = 128;
    }
    char *path = path_in("solid.png");
    save_png(path, &img);
    image_free(&img);
    data_item it = item_for(path, NULL);
    float x[3 * 8 * 8];
    char err[512];
    assert_int_equal(data_make_sample(&it, 8, 2, 0, x, NULL, NULL, err, sizeof err), 0);
    const double want[3] = {(1.0 - 0.485) / 0.229, (0.0 - 0.456) / 0.224, (128 / 255.0 - 0.406) / 0.225};
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 64; p++) assert_float_equal(x[c * 64 + p], want[c], 1e-6);
    free(path);
}

static void test_grey_three_copies(void **state)
{
    (void)state;
    image g, rgb;
    fill_random(&g, 9, 7, 1, 5);
    assert_int_equal(image_alloc(&rgb, 9, 7, 3), 0);
    for (int i = 0; i < 63; i++) rgb.px[3 * i] = rgb.px[3 * i + 1] = rgb.px[3 * i + 2] = g.px[i];
    char *pg = path_in("grey.png"), *pc = path_in("grey_as_rgb.png");
    save_png(pg, &g);
    save_png(pc, &rgb);
    data_item ig = item_for(pg, NULL), ic = item_for(pc, NULL);
    float xg[3 * 16 * 16], xc[3 * 16 * 16];
    char err[512];
    assert_int_equal(data_make_sample(&ig, 16, 4, 0, xg, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(data_make_sample(&ic, 16, 4, 0, xc, NULL, NULL, err, sizeof err), 0);
    assert_memory_equal(xg, xc, sizeof xg);  /* grey is exactly an RGB image with R = G = B */
    for (int p = 0; p < 256; p++) {
        assert_float_equal(denorm(xg[p], 0), denorm(xg[256 + p], 1), 1e-3);
        assert_float_equal(denorm(xg[p], 0), denorm(xg[512 + p], 2), 1e-3);
    }
    /* and each channel is not merely the same number: the means differ */
    assert_true(fabsf(xg[0] - xg[256]) > 1e-3f);
    image_free(&g);
    image_free(&rgb);
    free(pg);
    free(pc);
}

/* ------------------------------------------------------------------------- */
/* Targets */

static void test_area_average(void **state)
{
    (void)state;
    /* 5x5 -> 2x2: cells cover [0, 2.5) and [2.5, 5), area 6.25; pixel 2 is shared half and half. */
    uint8_t a[25] = {0};
    a[0 * 5 + 0] = 255;   /* cell (0,0) only, weight 1: 1/6.25 = 0.16 */
    a[2 * 5 + 2] = 255;   /* the centre: a quarter in each cell: 0.25/6.25 = 0.04 */
    a[1 * 5 + 4] = 102;   /* (x 4, y 1) in cell (0,1): 0.4/6.25 = 0.064 */
    a[4 * 5 + 2] = 51;    /* (x 2, y 4): half in (1,0), half in (1,1): 0.2*0.5/6.25 = 0.016 */
    float out[4];
    data_area_average(a, 5, 5, 2, out);
    assert_float_equal(out[0], 0.16 + 0.04, 1e-6);
    assert_float_equal(out[1], 0.064 + 0.04, 1e-6);
    assert_float_equal(out[2], 0.04 + 0.016, 1e-6);
    assert_float_equal(out[3], 0.04 + 0.016, 1e-6);

    /* upsampling (2x2 -> 4x4): each cell inside one pixel */
    const uint8_t b[4] = {0, 51, 102, 255};
    float up[16];
    data_area_average(b, 2, 2, 4, up);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) assert_float_equal(up[i * 4 + j], b[(i / 2) * 2 + j / 2] / 255.0, 1e-6);

    /* 3x2 -> 2x2 (not a multiple, different axes): cell (0,0) = x [0, 1.5) x y [0, 1): (v0 + 0.5 v1) / 1.5 */
    const uint8_t c[6] = {30, 60, 90, 120, 150, 180};
    data_area_average(c, 3, 2, 2, out);
    assert_float_equal(out[0], (30 + 0.5 * 60) / 1.5 / 255, 1e-6);
    assert_float_equal(out[1], (0.5 * 60 + 90) / 1.5 / 255, 1e-6);
    assert_float_equal(out[3], (0.5 * 150 + 180) / 1.5 / 255, 1e-6);

    /* a constant map stays constant at any size */
    uint8_t k[7 * 11];
    memset(k, 200, sizeof k);
    float g[9];
    data_area_average(k, 7, 11, 3, g);
    for (int i = 0; i < 9; i++) assert_float_equal(g[i], 200 / 255.0, 1e-6);
}

static void test_heatmaps(void **state)
{
    (void)state;
    enum { W = 16, H = 16, G = 4 };
    double pts[DATA_NPOINTS][2];
    for (int k = 0; k < DATA_NPOINTS; k++) {
        pts[k][0] = fmod(k * 2.3, W - 1);
        pts[k][1] = fmod(k * 1.7, H - 1);
    }
    /* point 0 at (5.5, 9.5): x = 6, y = 10, u = 6*4/16 - 0.5 = 1, v = 2: peak 1 at row 2, column 1 */
    pts[0][0] = 5.5;
    pts[0][1] = 9.5;
    float *h = xmalloc(sizeof *h * DATA_NPOINTS * G * G);
    data_heatmaps((const double(*)[2])pts, W, H, G, h);
    int best = 0;
    for (int p = 1; p < G * G; p++)
        if (h[p] > h[best]) best = p;
    assert_int_equal(best, 2 * G + 1);
    assert_float_equal(h[2 * G + 1], 1.0, 1e-7);
    assert_float_equal(h[2 * G + 2], exp(-1 / 4.5), 1e-7);
    assert_float_equal(h[3 * G + 3], exp(-(4 + 1) / 4.5), 1e-7);
    assert_float_equal(h[0], exp(-(1 + 4) / 4.5), 1e-7);
    /* every map against the formula, on a non-square image */
    data_heatmaps((const double(*)[2])pts, 13, 19, G, h);
    for (int k = 0; k < DATA_NPOINTS; k++) {
        double u = (pts[k][0] + 0.5) * G / 13 - 0.5, v = (pts[k][1] + 0.5) * G / 19 - 0.5;
        for (int i = 0; i < G; i++)
            for (int j = 0; j < G; j++)
                assert_float_equal(h[(k * G + i) * G + j], exp(-((j - u) * (j - u) + (i - v) * (i - v)) / 4.5), 1e-6);
    }
    free(h);
}

/* ------------------------------------------------------------------------- */
/* Flip */

static void test_flip_permutation(void **state)
{
    (void)state;
    int fixed = 0;
    for (int k = 0; k < DATA_NPOINTS; k++) {
        assert_in_range(data_flip_perm[k], 0, DATA_NPOINTS - 1);
        assert_int_equal(data_flip_perm[data_flip_perm[k]], k);  /* an involution */
        fixed += data_flip_perm[k] == k;
    }
    /* jaw 8, nose bridge 27-30, nose tip 33, lips 51 57 62 66 */
    assert_int_equal(fixed, 10);
    const int pairs[][2] = {{0, 16}, {7, 9}, {17, 26}, {21, 22}, {31, 35}, {32, 34}, {36, 45}, {37, 44}, {38, 43},
                            {39, 42}, {40, 47}, {41, 46}, {48, 54}, {50, 52}, {55, 59}, {56, 58}, {60, 64}, {61, 63},
                            {65, 67}};
    for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++) assert_int_equal(data_flip_perm[pairs[p][0]], pairs[p][1]);
    const int fixed_pts[] = {8, 27, 28, 29, 30, 33, 51, 57, 62, 66};
    for (size_t p = 0; p < sizeof fixed_pts / sizeof *fixed_pts; p++)
        assert_int_equal(data_flip_perm[fixed_pts[p]], fixed_pts[p]);
}

static void test_flip_landmarks(void **state)
{
    (void)state;
    double pts[DATA_NPOINTS][2], once[DATA_NPOINTS][2], twice[DATA_NPOINTS][2];
    for (int k = 0; k < DATA_NPOINTS; k++) {
        pts[k][0] = 3.25 + k * 0.5;
        pts[k][1] = 100 - k;
    }
    data_flip_landmarks((const double(*)[2])pts, 64, once);
    /* new 36 = mirror of old 45: continuous x 45*0.5 + 3.25 + 0.5 -> 64 - that, back to pixel index */
    assert_float_equal(once[36][0], 64 - (pts[45][0] + 0.5) - 0.5, 1e-12);
    assert_float_equal(once[36][1], pts[45][1], 0);
    assert_float_equal(once[45][0], 64 - 1 - pts[36][0], 1e-12);
    assert_float_equal(once[8][0], 64 - 1 - pts[8][0], 1e-12);  /* chin: itself, mirrored */
    data_flip_landmarks((const double(*)[2])once, 64, twice);
    for (int k = 0; k < DATA_NPOINTS; k++) {
        assert_float_equal(twice[k][0], pts[k][0], 1e-12);
        assert_float_equal(twice[k][1], pts[k][1], 0);
    }
}

/* A flipped sample equals the unflipped sample of the mirrored files with the mirrored landmarks, and its
 * image is the left-right mirror of the unflipped one. */
static void test_flip_sample(void **state)
{
    (void)state;
    enum { W = 13, H = 11, S = 20, G = 5 };
    image img, alpha;
    fill_random(&img, W, H, 3, 77);
    fill_random(&alpha, W, H, 1, 78);
    char *p_img = path_in("f.png"), *p_alpha = path_in("f.alpha.png"), *m_img = path_in("fm.png"),
         *m_alpha = path_in("fm.alpha.png");
    save_png(p_img, &img);
    save_png(p_alpha, &alpha);
    mirror_image(&img);
    mirror_image(&alpha);
    save_png(m_img, &img);
    save_png(m_alpha, &alpha);
    data_item it = item_for(p_img, p_alpha), mt = item_for(m_img, m_alpha);
    for (int k = 0; k < DATA_NPOINTS; k++) {
        it.landmarks[k][0] = fmod(k * 0.77, W - 1);
        it.landmarks[k][1] = fmod(k * 0.53, H - 1);
    }
    data_flip_landmarks((const double(*)[2])it.landmarks, W, mt.landmarks);
    float *x[3], *o[3], *h[3];
    char err[512];
    for (int v = 0; v < 3; v++) {
        x[v] = xmalloc(sizeof(float) * 3 * S * S);
        o[v] = xmalloc(sizeof(float) * G * G);
        h[v] = xmalloc(sizeof(float) * DATA_NPOINTS * G * G);
    }
    assert_int_equal(data_make_sample(&it, S, G, 0, x[0], o[0], h[0], err, sizeof err), 0);
    assert_int_equal(data_make_sample(&it, S, G, 1, x[1], o[1], h[1], err, sizeof err), 0);
    assert_int_equal(data_make_sample(&mt, S, G, 0, x[2], o[2], h[2], err, sizeof err), 0);
    assert_memory_equal(x[1], x[2], sizeof(float) * 3 * S * S);
    assert_memory_equal(o[1], o[2], sizeof(float) * G * G);
    for (int p = 0; p < DATA_NPOINTS * G * G; p++) assert_float_equal(h[1][p], h[2][p], 1e-6);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < S; y++)
            for (int xx = 0; xx < S; xx++)
                assert_float_equal(x[1][(c * S + y) * S + xx], x[0][(c * S + y) * S + S - 1 - xx], 1e-5);
    for (int i = 0; i < G; i++)
        for (int j = 0; j < G; j++) assert_float_equal(o[1][i * G + j], o[0][i * G + G - 1 - j], 1e-6);
    /* heatmap 36 of the flipped sample is the mirror of heatmap 45 of the unflipped one */
    for (int i = 0; i < G; i++)
        for (int j = 0; j < G; j++)
            assert_float_equal(h[1][(36 * G + i) * G + j], h[0][(45 * G + i) * G + G - 1 - j], 1e-6);
    for (int v = 0; v < 3; v++) {
        free(x[v]);
        free(o[v]);
        free(h[v]);
    }
    image_free(&img);
    image_free(&alpha);
    free(p_img);
    free(p_alpha);
    free(m_img);
    free(m_alpha);
}

/* ------------------------------------------------------------------------- */
/* The epoch plan */

static void test_epoch_plan(void **state)
{
    (void)state;
    enum { N = 1000 };
    int *a = xmalloc(sizeof *a * N), *b = xmalloc(sizeof *b * N), *seen = xcalloc(N, sizeof *seen);
    data_epoch_order(N, 42, 3, a);
    data_epoch_order(N, 42, 3, b);
    assert_memory_equal(a, b, sizeof *a * N);
    int moved = 0;
    for (int i = 0; i < N; i++) {
        assert_in_range(a[i], 0, N - 1);
        assert_int_equal(seen[a[i]]++, 0);
        moved += a[i] != i;
    }
    assert_true(moved > N / 2);
    data_epoch_order(N, 42, 4, b);
    assert_memory_not_equal(a, b, sizeof *a * N);
    data_epoch_order(N, 43, 3, b);
    assert_memory_not_equal(a, b, sizeof *a * N);
    /* pinned: the plan of a seed must never change (results are reproduced from the seed alone) */
    const int gold0[10] = {5, 2, 6, 0, 1, 7, 4, 3, 9, 8}, gold1[10] = {7, 3, 1, 0, 6, 8, 2, 4, 9, 5};
    data_epoch_order(10, 42, 0, b);
    assert_memory_equal(b, gold0, sizeof gold0);
    data_epoch_order(10, 42, 1, b);
    assert_memory_equal(b, gold1, sizeof gold1);
    const char *gold_flips = "0110011001010100";
    for (int i = 0; i < 16; i++) assert_int_equal(data_flip(42, 0, i), gold_flips[i] - '0');
    data_epoch_order(1, 42, 0, b);
    assert_int_equal(b[0], 0);
    data_epoch_order(0, 42, 0, b);

    int flips = 0, same_next_epoch = 0;
    for (int i = 0; i < N; i++) {
        int f = data_flip(42, 3, i);
        assert_true(f == 0 || f == 1);
        assert_int_equal(f, data_flip(42, 3, i));
        flips += f;
        same_next_epoch += f == data_flip(42, 4, i);
    }
    assert_in_range(flips, 430, 570);          /* p 0.5: 4.4 sigma */
    assert_in_range(same_next_epoch, 430, 570); /* independent across epochs */
    /* the two stream families never meet */
    assert_true(DATA_STREAM_ORDER(0) != DATA_STREAM_FLIP(0, 0));
    assert_true((DATA_STREAM_FLIP(32767, 0xffffffffu) & (1ull << 47)) && !(DATA_STREAM_ORDER(32767) & (1ull << 47)));
    free(a);
    free(b);
    free(seen);
}

/* ------------------------------------------------------------------------- */
/* data_open_split */

static void test_open_split(void **state)
{
    (void)state;
    char *db = build_db("plain", 0), err[2048];
    data_split s;
    if (data_open_split(db, NULL, "train", NULL, &s, err, sizeof err)) fail_msg("%s", err);
    assert_string_equal(s.dataset, "fx");
    assert_string_equal(s.split, "train");
    assert_string_equal(s.mode, "identity");
    assert_int_equal(s.mode_seed, 1);
    assert_int_equal(s.nclasses, 7);
    assert_string_equal(s.labels[0], "surprise");
    assert_string_equal(s.labels[6], "neutral");
    assert_int_equal(s.n, 10);  /* not the missing image, not the unsplit one */
    for (int i = 0; i < 10; i++) {
        const data_item *it = &s.items[i];
        const fx_image *f = &fx[i];  /* fx train images are in name order */
        assert_string_equal(it->name, f->name);
        assert_int_equal(it->image_id, NFX - i);
        assert_int_equal(it->label, f->label);
        assert_int_equal(it->width, f->w);
        assert_int_equal(it->height, f->h);
        assert_string_equal(it->image_path, f->out);
        assert_string_equal(it->alpha_path, f->alpha);
        assert_memory_equal(it->landmarks, f->pts, sizeof f->pts);  /* %.17g round trips */
    }
    data_split_free(&s);
    /* explicit names give the same */
    if (data_open_split(db, "fx", "val", "identity:1", &s, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(s.n, 3);
    data_split_free(&s);
    free(db);
}

static void test_relative_paths(void **state)
{
    (void)state;
    char *db = build_db("relative", 0), err[2048], cwd[4096];
    data_split s;
    /* val rows hold "../masked/val/...": relative to the database's folder */
    if (data_open_split(db, NULL, "val", NULL, &s, err, sizeof err)) fail_msg("%s", err);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(s.items[i].name, fx[10 + i].name);
        assert_true(s.items[i].image_path[0] == '/');
        assert_int_equal(access(s.items[i].image_path, R_OK), 0);
        assert_int_equal(access(s.items[i].alpha_path, R_OK), 0);
    }
    data_split_free(&s);
    /* test rows hold "masked/test/...": relative to where masksynth ran; from elsewhere they are not found */
    assert_int_equal(data_open_split(db, NULL, "test", NULL, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "2 test images with a render file missing"));
    assert_non_null(strstr(err, "masked/test/test_00.png"));
    assert_null(s.items);
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(g_dir), 0);
    int rc = data_open_split(db, NULL, "test", NULL, &s, err, sizeof err);
    assert_int_equal(chdir(cwd), 0);
    if (rc) fail_msg("%s", err);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.items[1].image_path, fx[14].out);
    /* an absolute path keeps working from any folder */
    image img;
    assert_int_equal(image_load(s.items[1].image_path, &img, err, sizeof err), IMAGE_OK);
    image_free(&img);
    data_split_free(&s);
    free(db);
}

static void expect_open_error(const char *db, const char *dataset, const char *split, const char *mode,
                              const char *const *needles)
{
    char err[2048] = "";
    data_split s;
    int rc = data_open_split(db, dataset, split, mode, &s, err, sizeof err);
    if (rc != -1) fail_msg("data_open_split(%s, %s, %s) succeeded", split, dataset ? dataset : "NULL", mode ? mode : "NULL");
    assert_int_equal(s.n, 0);
    for (const char *const *n = needles; *n; n++)
        if (!strstr(err, *n)) fail_msg("message '%s' lacks '%s'", err, *n);
}

static void test_open_errors(void **state)
{
    (void)state;
    char *plain = build_db("plain_e", 0);
    expect_open_error(plain, NULL, "dev", NULL, (const char *[]){"split 'dev'", "train, val or test", NULL});
    expect_open_error(plain, "nope", "train", NULL, (const char *[]){"no dataset named 'nope'", NULL});
    expect_open_error(plain, NULL, "train", "identity:7", (const char *[]){"no assignment of mode identity:7", NULL});
    expect_open_error(plain, NULL, "train", "pattern", (const char *[]){"no assignment of mode pattern", NULL});
    expect_open_error(plain, NULL, "train", "masked", (const char *[]){"mode 'masked': unknown", NULL});
    expect_open_error(plain, NULL, "train", "identity:x", (const char *[]){"MODE:SEED", NULL});
    /* a database that does not exist is not created */
    char *none = path_in("db/none.sqlite");
    expect_open_error(none, NULL, "train", NULL, (const char *[]){none, "No such file", NULL});
    assert_int_equal(access(none, F_OK), -1);

    char *drop = build_db("drop", V_DROP_RENDER);
    expect_open_error(drop, NULL, "train", NULL,
                      (const char *[]){"1 train image with no render", "train_03.jpg", "masksynth --split train", NULL});
    char *failed = build_db("failed", V_DROP_RENDER | V_FAILED);
    expect_open_error(failed, NULL, "train", NULL,
                      (const char *[]){"1 train image with no render (first: train_03.jpg)",
                                       "1 train image with a render but no output (first: train_05.jpg, status failed)",
                                       NULL});
    char *two = build_db("two", V_TWO_MODES);
    expect_open_error(two, NULL, "train", NULL,
                      (const char *[]){"several mask assignments", "identity:1 (10 rendered)", "pattern:2 (10 rendered)", NULL});
    data_split s;
    char err[2048];
    if (data_open_split(two, NULL, "train", "pattern", &s, err, sizeof err)) fail_msg("%s", err);
    assert_string_equal(s.mode, "pattern");
    assert_int_equal(s.mode_seed, 2);
    assert_int_equal(s.n, 10);
    data_split_free(&s);
    char *dsets = build_db("dsets", V_TWO_DATASETS);
    expect_open_error(dsets, NULL, "train", NULL, (const char *[]){"several datasets (fx, other)", NULL});
    expect_open_error(dsets, "other", "train", NULL, (const char *[]){"split train has no images", NULL});
    if (data_open_split(dsets, "fx", "train", NULL, &s, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(s.n, 10);
    data_split_free(&s);
    char *missing = build_db("missing", V_MISSING_FILE);
    expect_open_error(missing, NULL, "train", NULL,
                      (const char *[]){"1 train image with a render file missing", "train_07.jpg", "/nonexistent/train_07.png", NULL});
    char *contempt = build_db("contempt", V_CONTEMPT);
    if (data_open_split(contempt, NULL, "train", NULL, &s, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(s.nclasses, 8);
    assert_string_equal(s.labels[7], "contempt");
    assert_int_equal(s.items[2].label, 7);
    data_split_free(&s);
    free(plain);
    free(none);
    free(drop);
    free(failed);
    free(two);
    free(dsets);
    free(missing);
    free(contempt);
}

static void test_sample_errors(void **state)
{
    (void)state;
    char *db = build_db("sample_e", 0), err[2048];
    data_split s;
    if (data_open_split(db, NULL, "train", NULL, &s, err, sizeof err)) fail_msg("%s", err);
    float *x = xmalloc(sizeof(float) * 3 * 16 * 16), *o = xmalloc(sizeof(float) * 16), *h = xmalloc(sizeof(float) * 68 * 16);
    /* every fixture image works, the JPEG one included */
    for (int i = 0; i < s.n; i++)
        if (data_make_sample(&s.items[i], 16, 4, i & 1, x, o, h, err, sizeof err)) fail_msg("%s", err);
    data_item it = s.items[1];
    char *junk = path_in("junk.png");
    FILE *f = fopen(junk, "wb");
    assert_non_null(f);
    fputs("\x89PNG\r\n\x1a\n but not really", f);
    fclose(f);
    it.image_path = junk;
    assert_int_equal(data_make_sample(&it, 16, 4, 0, x, o, h, err, sizeof err), -1);
    assert_non_null(strstr(err, "train_01.jpg"));
    assert_non_null(strstr(err, junk));
    /* a bad alpha map only matters when the occlusion target is wanted */
    it = s.items[1];
    it.alpha_path = junk;
    assert_int_equal(data_make_sample(&it, 16, 4, 0, x, NULL, h, err, sizeof err), 0);
    assert_int_equal(data_make_sample(&it, 16, 4, 0, x, o, h, err, sizeof err), -1);
    assert_non_null(strstr(err, "alpha map"));
    assert_non_null(strstr(err, junk));
    /* an alpha map of another size */
    it = s.items[1];
    it.alpha_path = s.items[2].alpha_path;
    assert_int_equal(data_make_sample(&it, 16, 4, 0, x, o, h, err, sizeof err), -1);
    assert_non_null(strstr(err, s.items[2].alpha_path));
    /* a file deleted after the split was read */
    it = s.items[1];
    char *gone = path_in("gone.png");
    it.image_path = gone;
    assert_int_equal(data_make_sample(&it, 16, 4, 0, x, o, h, err, sizeof err), -1);
    assert_non_null(strstr(err, gone));
    /* an image whose size is not the original's (a stale render) */
    it = s.items[1];
    it.width++;
    assert_int_equal(data_make_sample(&it, 16, 4, 0, x, o, h, err, sizeof err), -1);
    assert_non_null(strstr(err, it.image_path));
    free(x);
    free(o);
    free(h);
    free(junk);
    free(gone);
    data_split_free(&s);
    free(db);
}

/* ------------------------------------------------------------------------- */
/* The loader */

typedef struct {
    size_t len;
    uint8_t *bytes;
    int nbatches, nsamples;
} epoch_dump;

/* Runs one epoch and concatenates every batch's bytes; checks each sample against data_make_sample. */
static epoch_dump run_epoch(const data_split *s, data_loader_opts o)
{
    char err[2048];
    data_loader *l = data_loader_start(s, &o, err, sizeof err);
    if (!l) fail_msg("%s", err);
    epoch_dump d = {0};
    FILE *m = open_memstream((char **)&d.bytes, &d.len);
    const size_t xs = (size_t)3 * o.S * o.S, gs = (size_t)o.G * o.G;
    float *x = xmalloc(sizeof *x * xs), *occ = xmalloc(sizeof *occ * gs), *heat = xmalloc(sizeof *heat * 68 * gs);
    int *order = xmalloc(sizeof *order * (size_t)s->n);
    if (o.shuffle) data_epoch_order(s->n, o.seed, o.epoch, order);
    else
        for (int i = 0; i < s->n; i++) order[i] = i;
    data_batch *b;
    int rc;
    while ((rc = data_loader_next(l, &b)) == 1) {
        assert_int_equal(b->index, d.nbatches);
        fwrite(&b->n, sizeof b->n, 1, m);
        fwrite(b->x, sizeof *b->x, xs * b->n, m);
        if (o.with_targets) {
            fwrite(b->occ_t, sizeof *b->occ_t, gs * b->n, m);
            fwrite(b->heat_t, sizeof *b->heat_t, 68 * gs * b->n, m);
        } else {
            assert_null(b->occ_t);
            assert_null(b->heat_t);
        }
        fwrite(b->labels, sizeof *b->labels, b->n, m);
        fwrite(b->items, sizeof *b->items, b->n, m);
        fwrite(b->flipped, 1, b->n, m);
        for (int k = 0; k < b->n; k++) {
            int pos = d.nsamples + k, flip = o.augment ? data_flip(o.seed, o.epoch, pos) : 0;
            assert_int_equal(b->items[k], order[pos]);
            assert_int_equal(b->flipped[k], flip);
            assert_int_equal(b->labels[k], s->items[order[pos]].label);
            assert_int_equal(data_make_sample(&s->items[order[pos]], o.S, o.G, flip, x, occ, heat, err, sizeof err), 0);
            assert_memory_equal(b->x + k * xs, x, sizeof *x * xs);
            if (o.with_targets) {
                assert_memory_equal(b->occ_t + k * gs, occ, sizeof *occ * gs);
                assert_memory_equal(b->heat_t + k * 68 * gs, heat, sizeof *heat * 68 * gs);
            }
        }
        d.nsamples += b->n;
        d.nbatches++;
        data_loader_release(l, b);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(data_loader_next(l, &b), 0);  /* the end stays the end */
    assert_int_equal(d.nbatches, data_loader_nbatches(l));
    data_loader_stop(l);
    fclose(m);
    free(x);
    free(occ);
    free(heat);
    free(order);
    return d;
}

static void test_loader_threads(void **state)
{
    (void)state;
    char *db = build_db("loader", 0), err[2048];
    data_split s;
    if (data_open_split(db, NULL, "train", NULL, &s, err, sizeof err)) fail_msg("%s", err);
    data_loader_opts o = {.S = 32, .G = 8, .batch = 4, .seed = 42, .epoch = 2, .shuffle = 1, .augment = 1,
                          .with_targets = 1, .nthreads = 1};
    epoch_dump one = run_epoch(&s, o);
    assert_int_equal(one.nbatches, 3);  /* 10 = 4 + 4 + 2 */
    assert_int_equal(one.nsamples, 10);
    o.nthreads = 4;
    epoch_dump four = run_epoch(&s, o);
    assert_int_equal(one.len, four.len);
    assert_memory_equal(one.bytes, four.bytes, one.len);
    o.depth = 1;  /* no prefetch: still the same */
    epoch_dump shallow = run_epoch(&s, o);
    assert_memory_equal(one.bytes, shallow.bytes, one.len);
    free(shallow.bytes);
    free(four.bytes);

    /* drop_last: 2 full batches */
    o.drop_last = 1;
    o.depth = 0;
    epoch_dump dl = run_epoch(&s, o);
    assert_int_equal(dl.nbatches, 2);
    assert_int_equal(dl.nsamples, 8);
    assert_memory_equal(dl.bytes, one.bytes, dl.len);  /* the same first batches */
    free(dl.bytes);
    /* another epoch: another order and other flips */
    o.drop_last = 0;
    o.epoch = 3;
    epoch_dump other = run_epoch(&s, o);
    assert_int_equal(other.len, one.len);
    assert_memory_not_equal(other.bytes, one.bytes, one.len);
    free(other.bytes);
    free(one.bytes);
    /* evaluation: split order, no flips, no targets, batch larger than the split */
    data_loader_opts e = {.S = 16, .G = 4, .batch = 16, .nthreads = 3};
    epoch_dump ev = run_epoch(&s, e);
    assert_int_equal(ev.nbatches, 1);
    assert_int_equal(ev.nsamples, 10);
    free(ev.bytes);
    e.drop_last = 1;  /* fewer items than a batch: an empty epoch */
    ev = run_epoch(&s, e);
    assert_int_equal(ev.nbatches, 0);
    free(ev.bytes);
    data_split_free(&s);
    free(db);
}

/* A counting allocator for the uploaded buffers: every block it gave is
 * freed through it, and the batches' x, targets and labels lie in its blocks. */
typedef struct {
    int allocs, frees;
    void *blocks[64];
    size_t sizes[64];
} count_alloc;

static void *counted_alloc(void *ctx, size_t bytes)
{
    count_alloc *c = ctx;
    assert_true(c->allocs < 64);
    c->sizes[c->allocs] = bytes;
    return c->blocks[c->allocs++] = malloc(bytes);
}

static void counted_free(void *ctx, void *p)
{
    count_alloc *c = ctx;
    int known = 0;
    for (int i = 0; i < c->allocs; i++) known |= c->blocks[i] == p;
    assert_true(known);
    c->frees++;
    free(p);
}

static int in_blocks(const count_alloc *c, const void *p, size_t bytes)
{
    for (int i = 0; i < c->allocs; i++)
        if ((const char *)p >= (const char *)c->blocks[i] &&
            (const char *)p + bytes <= (const char *)c->blocks[i] + c->sizes[i])
            return 1;
    return 0;
}

static void test_loader_host_alloc(void **state)
{
    (void)state;
    char *db = build_db("loader_h", 0), err[2048];
    data_split s;
    if (data_open_split(db, NULL, "train", NULL, &s, err, sizeof err)) fail_msg("%s", err);
    data_loader_opts o = {.S = 32, .G = 8, .batch = 4, .seed = 42, .epoch = 2, .shuffle = 1, .augment = 1,
                          .with_targets = 1, .nthreads = 2};
    epoch_dump plain = run_epoch(&s, o);
    count_alloc c = {0};
    o.host_alloc = counted_alloc, o.host_free = counted_free, o.host_ctx = &c;
    epoch_dump counted = run_epoch(&s, o); /* the same bytes from the caller's memory */
    assert_int_equal(counted.len, plain.len);
    assert_memory_equal(counted.bytes, plain.bytes, plain.len);
    assert_int_equal(c.allocs, 3 * 4); /* depth 3 x (x, occ_t, heat_t, labels) */
    assert_int_equal(c.frees, c.allocs);
    free(plain.bytes), free(counted.bytes);

    count_alloc c2 = {0};
    o.host_ctx = &c2;
    o.with_targets = 0; /* inference: x and labels only */
    data_loader *l = data_loader_start(&s, &o, err, sizeof err);
    assert_non_null(l);
    data_batch *b;
    assert_int_equal(data_loader_next(l, &b), 1);
    assert_true(in_blocks(&c2, b->x, sizeof *b->x * 3 * 32 * 32 * (size_t)b->n));
    assert_true(in_blocks(&c2, b->labels, sizeof *b->labels * (size_t)b->n));
    assert_false(in_blocks(&c2, b->items, sizeof *b->items)); /* not uploaded: plain memory */
    data_loader_release(l, b);
    data_loader_stop(l);
    assert_int_equal(c2.allocs, 3 * 2);
    assert_int_equal(c2.frees, c2.allocs);

    o.host_free = NULL; /* one without the other */
    assert_null(data_loader_start(&s, &o, err, sizeof err));
    assert_non_null(strstr(err, "host_alloc and host_free"));
    data_split_free(&s);
    free(db);
}

static void test_loader_stop_and_errors(void **state)
{
    (void)state;
    char *db = build_db("loader_e", 0), err[2048];
    data_split s;
    if (data_open_split(db, NULL, "train", NULL, &s, err, sizeof err)) fail_msg("%s", err);
    data_loader_opts o = {.S = 16, .G = 4, .batch = 2, .with_targets = 1, .nthreads = 4};
    /* stop mid-epoch, holding a batch and with workers waiting (ASan: nothing leaks or races) */
    data_loader *l = data_loader_start(&s, &o, err, sizeof err);
    assert_non_null(l);
    data_batch *b, *b2;
    assert_int_equal(data_loader_next(l, &b), 1);
    data_loader_stop(l);
    l = data_loader_start(&s, &o, err, sizeof err);
    data_loader_stop(l);  /* before anything was asked */

    /* holding every buffer and asking for more is an error, not a hang */
    o.depth = 2;
    l = data_loader_start(&s, &o, err, sizeof err);
    assert_int_equal(data_loader_next(l, &b), 1);
    assert_int_equal(data_loader_next(l, &b2), 1);
    assert_int_equal(data_loader_next(l, &b2), -1);
    assert_non_null(strstr(data_loader_error(l), "still held"));
    data_loader_stop(l);

    /* a corrupt image in the third batch: the first two come, then -1 naming it, and it stays -1 */
    char *junk = path_in("junk2.png");
    FILE *f = fopen(junk, "wb");
    assert_non_null(f);
    fputs("not an image", f);
    fclose(f);
    char *saved = s.items[5].image_path;
    s.items[5].image_path = junk;
    o.depth = 0;
    for (int threads = 1; threads <= 4; threads += 3) {
        o.nthreads = threads;
        l = data_loader_start(&s, &o, err, sizeof err);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(data_loader_next(l, &b), 1);
            data_loader_release(l, b);
        }
        assert_int_equal(data_loader_next(l, &b), -1);
        assert_null(b);
        assert_non_null(strstr(data_loader_error(l), "train_05.jpg"));
        assert_non_null(strstr(data_loader_error(l), junk));
        assert_int_equal(data_loader_next(l, &b), -1);
        data_loader_stop(l);
    }
    s.items[5].image_path = saved;

    /* bad options */
    data_loader_opts bad = o;
    bad.batch = 0;
    assert_null(data_loader_start(&s, &bad, err, sizeof err));
    assert_non_null(strstr(err, "batch 0"));
    bad = o;
    bad.shuffle = 1;
    bad.epoch = 40000;
    assert_null(data_loader_start(&s, &bad, err, sizeof err));
    assert_non_null(strstr(err, "epoch 40000"));
    free(junk);
    data_split_free(&s);
    free(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize_upsample_2x),
        cmocka_unit_test(test_resize_downsample_fractional),
        cmocka_unit_test(test_resize_row_cache_is_exact),
        cmocka_unit_test(test_resize_matches_pytorch),
        cmocka_unit_test(test_normalisation),
        cmocka_unit_test(test_grey_three_copies),
        cmocka_unit_test(test_area_average),
        cmocka_unit_test(test_heatmaps),
        cmocka_unit_test(test_flip_permutation),
        cmocka_unit_test(test_flip_landmarks),
        cmocka_unit_test(test_flip_sample),
        cmocka_unit_test(test_epoch_plan),
        cmocka_unit_test(test_open_split),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_sample_errors),
        cmocka_unit_test(test_loader_threads),
        cmocka_unit_test(test_loader_host_alloc),
        cmocka_unit_test(test_loader_stop_and_errors),
    };
    return cmocka_run_group_tests_name("data", tests, setup, teardown);
}
