/* masksynth on real and hostile inputs: masks on the real astronaut face
 * (dlib landmarks; style full covers the mouth and not the eyes, below_nose
 * leaves the nose tip visible), and bad image files (zero bytes, truncated
 * JPEG, bad PNG CRC, 1x1, a 20000x20000 header, CMYK JPEG, 16-bit PNG) going
 * through ingestion and rendering: each gets a status, nothing crashes. */
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
#include <zlib.h>

#include "../common/image.h"
#include "../common/util.h"
#include "../db/db.h"
#include "../masksynth/dataset.h"
#include "../masksynth/face.h"
#include "../masksynth/ingest.h"
#include "../masksynth/landmarks.h"
#include "../masksynth/mask.h"
#include "../masksynth/plan.h"
#include "../masksynth/render.h"
#include "../masksynth/store.h"
#include "imgfix.h"

#define FACE "tests/data/astronaut_face.png"

static void test_masks_on_a_real_face(void **state)
{
    (void)state;
    char err[1024];
    image face;
    assert_int_equal(image_load(FACE, &face, err, sizeof err), IMAGE_OK);
    lmk_model *m = lmk_load(LMK_DEFAULT_PREDICTOR, err, sizeof err);
    if (!m) fail_msg("%s (make deps installs libdlib-data)", err);
    face_fit fit;
    assert_int_equal(lmk_detect(m, &face, 1, &fit), 1);
    const char *styles[3] = {"full", "below_nose", "chin"};
    const char *types[4] = {"surgical", "n95", "kn95", "cloth"};
    for (int t = 0; t < 4; t++)
        for (int s = 0; s < 3; s++) {
            pattern p = {.type = types[t], .style = styles[s], .texture = "plain", .colour = "#8fb8de",
                         .params = "{\"scale\": 1.0, \"angle\": 0.0, \"contrast\": 0.2, \"texture_seed\": 1, \"ear_loops\": true}"};
            snprintf(p.stable_id, sizeof p.stable_id, "test-%s-%s", types[t], styles[s]);
            image out;
            mask_result r;
            if (mask_render(&face, (const double(*)[2])fit.pts, &p, 7, &out, &r, err, sizeof err)) fail_msg("%s", err);
            for (int k = 36; k <= 47; k++) assert_true(r.visible[k]);             /* eyes never covered */
            if (s == 0)
                for (int k = 48; k <= 67; k++)
                    if (r.visible[k]) fail_msg("%s full: mouth landmark P%d visible", types[t], k);
            if (s == 1) {
                assert_true(r.visible[30]);                                        /* nose tip */
                for (int k = 48; k <= 67; k++) assert_false(r.visible[k]);
            }
            /* Untouched pixels are the input's bytes. */
            for (int i = 0; i < face.w * face.h; i++)
                if (r.alpha[i] == 0) assert_memory_equal(out.px + 3 * i, face.px + 3 * i, 3);
            image_free(&out);
            mask_result_free(&r);
        }
    lmk_free(m);
    image_free(&face);
}

/* landmarks.cpp walks dlib's trees itself (faster); here dlib's own
 * shape_predictor runs on the same pixels and boxes: the points must agree to
 * dlib's rounding (half an upsampled pixel). */
static void test_landmarks_match_dlib_itself(void **state)
{
    (void)state;
    char err[1024];
    lmk_model *m = lmk_load(LMK_DEFAULT_PREDICTOR, err, sizeof err);
    lmk_reference *ref = lmk_reference_load(LMK_DEFAULT_PREDICTOR, err, sizeof err);
    if (!m || !ref) fail_msg("%s", err);
    double worst = 0;
    int faces = 0;
    for (int i = 0; i < 41; i++) {
        image img;
        if (i == 0) assert_int_equal(image_load(FACE, &img, err, sizeof err), IMAGE_OK);
        else {
            int side = i % 2 ? 100 : 48, c = i % 2 ? 3 : 1;
            face_params p;
            double truth[68][2];
            face_params_from_seed(&p, (uint64_t)i * 7919);
            assert_int_equal(image_alloc(&img, side, side, c), 0);
            face_draw(&img, &p, i % 7, (uint64_t)i, truth);
        }
        face_fit fit;
        int side = img.w < img.h ? img.w : img.h;
        if (lmk_detect(m, &img, side >= 80 ? 1 : 2, &fit) != 1) lmk_fallback_box(img.w, img.h, fit.box);
        double ours[68][2], theirs[68][2];
        assert_int_equal(lmk_fit_box(m, &img, fit.box, &fit), 1);
        memcpy(ours, fit.pts, sizeof ours);
        assert_int_equal(lmk_reference_fit(ref, m, &img, fit.box, theirs), 1);
        double tol = fit.box[2] < 160 ? 0.25 : 0.5;  /* half a pixel of the image the predictor saw */
        for (int k = 0; k < 68; k++)
            for (int a = 0; a < 2; a++) {
                double d = fabs(ours[k][a] - theirs[k][a]);
                if (d > worst) worst = d;
                if (d > tol + 1e-9) fail_msg("image %d, point %d: ours %.3f, dlib %.3f", i, k, ours[k][a], theirs[k][a]);
            }
        faces++;
        image_free(&img);
    }
    print_message("# %d images: largest difference from dlib's shape_predictor %.3f px\n", faces, worst);
    lmk_reference_free(ref);
    lmk_free(m);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* A PNG header claiming 20000 x 20000 with a valid CRC, then nothing. */
static void write_huge_png(const char *path)
{
    uint8_t b[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                     0, 0, 0x4e, 0x20, 0, 0, 0x4e, 0x20, 8, 2, 0, 0, 0};
    uLong crc = crc32(0, b + 12, 17);
    for (int i = 0; i < 4; i++) b[29 + i] = (uint8_t)(crc >> (24 - 8 * i));
    write_file(path, b, sizeof b);
}

static void test_bad_images_through_the_pipeline(void **state)
{
    (void)state;
    char dir[] = "/tmp/ms_inputs_XXXXXX", path[512], err[2048];
    assert_non_null(mkdtemp(dir));
    image face;
    assert_int_equal(image_load(FACE, &face, err, sizeof err), IMAGE_OK);
    uint8_t *jpg;
    size_t jlen;
    assert_int_equal(image_encode_jpeg(&face, 90, &jpg, &jlen, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/face.jpg", dir);
    write_file(path, jpg, jlen);
    snprintf(path, sizeof path, "%s/zero.jpg", dir);
    write_file(path, "", 0);
    snprintf(path, sizeof path, "%s/truncated.jpg", dir);
    write_file(path, jpg, jlen / 2);
    uint8_t *png;
    size_t plen;
    assert_int_equal(image_encode_png(&face, &png, &plen, err, sizeof err), 0);
    png[40] ^= 0x55;  /* inside IDAT: its CRC no longer matches */
    snprintf(path, sizeof path, "%s/badcrc.png", dir);
    write_file(path, png, plen);
    image one;
    assert_int_equal(image_alloc(&one, 1, 1, 3), 0);
    snprintf(path, sizeof path, "%s/one.png", dir);
    assert_int_equal(image_save_png(path, &one, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/huge.png", dir);
    write_huge_png(path);
    /* CMYK JPEG and 16-bit PNG of the face. */
    uint8_t *cmyk = xmalloc((size_t)face.w * face.h * 4), *rows16 = xmalloc((size_t)face.w * face.h * 6);
    for (int i = 0; i < face.w * face.h; i++) {
        const uint8_t *p = face.px + 3 * i;
        int k = 255 - (p[0] > p[1] ? (p[0] > p[2] ? p[0] : p[2]) : (p[1] > p[2] ? p[1] : p[2]));
        for (int c = 0; c < 3; c++) cmyk[4 * i + c] = (uint8_t)(k == 255 ? 0 : (255 - p[c] - k) * 255 / (255 - k));
        cmyk[4 * i + 3] = (uint8_t)k;
        for (int c = 0; c < 3; c++) rows16[6 * i + 2 * c] = rows16[6 * i + 2 * c + 1] = p[c];
    }
    uint8_t *cj = NULL;
    unsigned long cjlen = 0;
    cmyk_jpeg_encode(face.w, face.h, cmyk, 0, &cj, &cjlen);
    snprintf(path, sizeof path, "%s/cmyk.jpg", dir);
    write_file(path, cj, cjlen);
    raw_png r16 = {.w = face.w, .h = face.h, .depth = 16, .color_type = PNG_COLOR_TYPE_RGB,
                   .interlace = PNG_INTERLACE_NONE, .rows = rows16, .rowbytes = (size_t)face.w * 6};
    tbuf t16;
    raw_png_encode(&r16, &t16);
    snprintf(path, sizeof path, "%s/deep16.png", dir);
    write_file(path, t16.buf, t16.len);

    const char *names[8] = {"face.jpg", "zero.jpg", "truncated.jpg", "badcrc.png", "one.png", "huge.png", "cmyk.jpg",
                            "deep16.png"};
    const int want_ok[8] = {1, 0, 0, 0, 1, 0, 1, 1};
    char list[512];
    snprintf(list, sizeof list, "%s/list.csv", dir);
    FILE *f = fopen(list, "w");
    fprintf(f, "image,label,split\n");
    for (int i = 0; i < 8; i++) fprintf(f, "%s,%s,%s\n", names[i], class_name[i % 7], i % 2 ? "test" : "train");
    fclose(f);

    dataset d = {0};
    d.name = xstrdup("inputs");
    ingest_opts o = {.kind = "csv", .list = list, .threads = 2};
    assert_int_equal(ingest(&d, &o, err, sizeof err), 0);
    assert_int_equal(d.n, 8);
    for (int i = 0; i < 8; i++) {
        if (want_ok[i] != (d.rec[i].status == ST_OK))
            fail_msg("%s: status %s (%s)", names[i], status_name[d.rec[i].status], d.rec[i].message ? d.rec[i].message : "");
        if (!want_ok[i]) assert_non_null(strstr(d.rec[i].message, names[i]));  /* the message names the file */
    }
    plan_split(&d, 0.1, 0, 42);
    groups g;
    plan_groups(&d, -1, &g);
    pattern *bank = pattern_bank(42, 8);
    plan_assign(&d, &g, bank, 8, ASSIGN_IDENTITY, 42);
    init_settings s = {.seed = 42, .bank_seed = 42, .val_fraction = 0.1, .bank_size = 8, .phash_threshold = -1,
                       .allow_partial = 1, .argv_json = "[]"};
    snprintf(path, sizeof path, "%s/db.sqlite", dir);
    sqlite3 *db;
    assert_int_equal(db_open(path, &db, err, sizeof err), 0);
    if (store_dataset(db, &d, &g, bank, &s, 0, err, sizeof err)) fail_msg("%s", err);
    char out[512];
    snprintf(out, sizeof out, "%s/masked", dir);
    render_opts ro = {.split = "all", .out_dir = out, .predictor = LMK_DEFAULT_PREDICTOR, .upsample = -1, .threads = 2,
                      .nshards = 1};
    assert_int_equal(render_split(db, 1, &ro), 0);
    /* Every usable image has a render row with a status; the 1x1 one too. */
    sqlite3_stmt *st;
    assert_int_equal(db_prepare(db, "SELECT i.name, r.status FROM images i LEFT JOIN renders r ON r.image_id = i.id "
                                    "WHERE i.status = 'ok' ORDER BY i.id", &st, err, sizeof err), 0);
    int rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0), *status = (const char *)sqlite3_column_text(st, 1);
        if (!status) fail_msg("%s has no render row", name);
        print_message("# %s: %s\n", name, status);
        if (!strcmp(name, "face.jpg")) assert_string_equal(status, "ok");
        rows++;
    }
    sqlite3_finalize(st);
    assert_int_equal(rows, 4);
    db_close(db);

    free(bank);
    groups_free(&g);
    dataset_free(&d);
    free(cmyk);
    free(rows16);
    free(cj);
    free(t16.buf);
    free(jpg);
    free(png);
    image_free(&one);
    image_free(&face);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_masks_on_a_real_face),
        cmocka_unit_test(test_landmarks_match_dlib_itself),
        cmocka_unit_test(test_bad_images_through_the_pipeline),
    };
    return cmocka_run_group_tests_name("render_inputs", tests, NULL, NULL);
}
