/* landmarks.cpp: dlib's HOG frontal face detector and 68-point shape predictor
 * behind the C interface of landmarks.h. The project's only C++.
 *
 * Pixels. Detection and fitting run on an 8-bit grey copy of the image; RGB
 * is converted with dlib's own rule, (r + g + b) / 3 truncated (what
 * dlib::assign_pixel and load_image into array2d<unsigned char> do), so a
 * bare-dlib program that loads the same file as grey sees the same pixels.
 * The shape predictor reads grey intensities either way; the detector on grey
 * is what MaskTheFace does (cv2 grey, detector(gray, 1)) and is faster than
 * dlib's max-over-channels HOG on RGB.
 *
 * Upsampling. dlib::pyramid_up with pyramid_down<2>, repeated `upsample`
 * times, as dlib's examples and its Python binding do. pyramid_up sizes its
 * output with pyr.rect_up() and fills it with resize_image(), whose mapping is
 * p_in = p_out * (n_in - 1) / (n_out - 1) per axis (pixel centres). Boxes and
 * points are mapped back with that exact mapping, not with pyr.rect_down()
 * (which dlib's Python binding uses and which is off by about 1.25 / 0.75
 * upsampled pixels).
 *
 * Shape predictor. The file is read with dlib's own deserialize routines, in
 * the order dlib::deserialize(shape_predictor&) uses (version 1, initial
 * shape, forests of impl::regression_tree, anchor indices, deltas), and
 * validated (dlib trusts the file: a bad index would read out of bounds). It
 * is then evaluated exactly as dlib::shape_predictor::operator() does: the
 * same impl::extract_feature_pixel_values, the same tree walk, the same float
 * additions in the same order, so its points, rounded, are dlib's (checked
 * on 296 detections over 1911 crops and sizes of the test face, and pinned by
 * tests/test_landmarks.c).
 * Two things differ: (1) the trees are stored compactly (a split is 12 bytes,
 * not 24, and all leaf vectors sit in one array) and each cascade level walks
 * all its 500 trees first, prefetching the chosen leaf vectors, then adds
 * them: the predictor's cost is memory latency (about 4 MB of leaf vectors
 * touched per face in a 65 MB model), and this cuts it about 3x; (2) points
 * are returned unrounded (dlib's full_object_detection rounds to integer
 * pixels, up to 0.5 px, over 1% of a 48 px face).
 *
 * Fitting. Landmarks are fitted on the upsampled image, the one the detector
 * saw (as dlib's face_landmark_detection_ex does; the predictor's work does
 * not depend on the image size), and mapped back. On crops of the NASA
 * portrait (tests/data) resized to 48-124 px, against landmarks fitted at 4x
 * the resolution, this is 2-10% closer than fitting on the original pixels;
 * the larger gain is from the unrounded points (at 48 px: 2.5% of the eye
 * distance for dlib's rounded points on the original pixels, 1.3% here). lmk_fit_box does the same with one
 * level when the box is smaller than FIT_UPSAMPLE_BELOW pixels (fallback
 * boxes on aligned 48-100 px crops).
 *
 * Models. The predictor file is about 100 MB and takes about a second to
 * read; the evaluated model is read-only, so every lmk_model loaded from the
 * same file (same device, inode, size and mtime) shares one copy (a
 * process-wide cache of weak pointers under a mutex). The detector keeps
 * scratch state: one per model, one model per thread, each a copy of one
 * decoded prototype.
 *
 * Nothing here prints; no exception leaves an extern "C" function. */
#include <stddef.h>
#include <stdint.h>

/* landmarks.h and image.h are plain C headers without extern "C" guards. */
extern "C" {
#include "landmarks.h"
}

#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms.h>
#include <dlib/serialize.h>

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

/* A dlib 68-point shape predictor, laid out for evaluation. */
struct lmk_predictor {
    struct split {
        uint32_t idx1, idx2; /* feature indices */
        float thresh;
    };
    struct tree {
        uint32_t split_off, n_splits; /* into splits; the tree has n_splits + 1 leaves */
        size_t leaf_off;              /* into leaves: (n_splits + 1) vectors of dim floats */
    };
    struct level {
        uint32_t tree_off, n_trees; /* into trees */
    };
    dlib::matrix<float, 0, 1> initial_shape; /* dim = 2 * parts, box units */
    std::vector<std::vector<unsigned long>> anchor_idx;
    std::vector<std::vector<dlib::vector<float, 2>>> deltas;
    std::vector<level> levels;
    std::vector<tree> trees;
    std::vector<split> splits;
    std::vector<float> leaves;
    long dim = 0;
};

namespace {

/* lmk_detect refuses (-1) an upsampled image larger than this (pixels). */
const double MAX_UP_PIXELS = (double)IMAGE_MAX_PIXELS;
const int MAX_UPSAMPLE = 8;
/* lmk_fit_box fits on a once-upsampled copy below this box side (pixels). */
const double FIT_UPSAMPLE_BELOW = 160.0;

typedef std::tuple<dev_t, ino_t, off_t, long long, long> file_key;

std::mutex g_cache_mu;
std::map<file_key, std::weak_ptr<const lmk_predictor>> g_cache;
/* get_frontal_face_detector() decodes an embedded model (about 0.2 s); later
 * models copy this one. */
std::unique_ptr<const dlib::frontal_face_detector> g_detector;

void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* One level of pyramid_up: the scale that maps output pixel coordinates back
 * to input ones, per axis (resize_image's mapping). */
struct level_scale {
    double sx, sy;
};

} // namespace

struct lmk_model {
    std::shared_ptr<const lmk_predictor> sp;
    dlib::frontal_face_detector det;
    dlib::pyramid_down<2> pyr;
    dlib::array2d<unsigned char> grey, up, tmp; /* scratch, reused across calls */
    std::vector<dlib::rect_detection> dets;
    dlib::matrix<float, 0, 1> shape;  /* scratch of the predictor */
    std::vector<float> features;
    std::vector<const float *> leaf;
    std::vector<dlib::dpoint> parts;
};

namespace {

/* Reads dlib's shape_predictor format (dlib::deserialize(shape_predictor&),
 * version 1) into p. Throws dlib::serialization_error or std::bad_alloc;
 * returns an empty string or what is wrong with the model. */
std::string read_predictor(std::istream &in, lmk_predictor &p)
{
    int version = 0;
    dlib::deserialize(version, in);
    if (version != 1) return "unsupported shape_predictor version " + std::to_string(version);
    std::vector<std::vector<dlib::impl::regression_tree>> forests;
    dlib::deserialize(p.initial_shape, in);
    dlib::deserialize(forests, in);
    dlib::deserialize(p.anchor_idx, in);
    dlib::deserialize(p.deltas, in);

    p.dim = p.initial_shape.size();
    if (p.dim != 2 * 68) return "the model has " + std::to_string(p.dim / 2) + " points, 68 are needed";
    if (forests.empty()) return "the model has no trees";
    if (forests.size() != p.anchor_idx.size() || forests.size() != p.deltas.size())
        return "inconsistent cascade counts";
    size_t n_trees = 0, n_splits = 0, n_leaf_floats = 0;
    for (size_t c = 0; c < forests.size(); c++) {
        if (p.anchor_idx[c].size() != p.deltas[c].size() || p.deltas[c].empty() || p.deltas[c].size() > 0xffffffu)
            return "inconsistent feature counts";
        for (unsigned long a : p.anchor_idx[c])
            if (a >= (unsigned long)(p.dim / 2)) return "a feature anchor is out of range";
        for (const dlib::vector<float, 2> &d : p.deltas[c])
            if (!std::isfinite(d.x()) || !std::isfinite(d.y())) return "a feature offset is not finite";
        for (const dlib::impl::regression_tree &t : forests[c]) {
            if (t.leaf_values.size() != t.splits.size() + 1) return "a tree has a wrong number of leaves";
            for (const dlib::impl::split_feature &sf : t.splits)
                if (sf.idx1 >= p.deltas[c].size() || sf.idx2 >= p.deltas[c].size())
                    return "a split feature is out of range";
            for (const dlib::matrix<float, 0, 1> &l : t.leaf_values)
                if (l.size() != p.dim) return "a leaf vector has a wrong size";
            n_splits += t.splits.size();
            n_leaf_floats += t.leaf_values.size() * (size_t)p.dim;
        }
        n_trees += forests[c].size();
    }
    if (n_trees > 0xffffffffu || n_splits > 0xffffffffu) return "too many trees";
    for (long i = 0; i < p.dim; i++)
        if (!std::isfinite(p.initial_shape(i))) return "the mean shape is not finite";

    p.levels.reserve(forests.size());
    p.trees.reserve(n_trees);
    p.splits.reserve(n_splits);
    p.leaves.reserve(n_leaf_floats);
    for (size_t c = 0; c < forests.size(); c++) {
        lmk_predictor::level lv;
        lv.tree_off = (uint32_t)p.trees.size();
        lv.n_trees = (uint32_t)forests[c].size();
        p.levels.push_back(lv);
        for (dlib::impl::regression_tree &t : forests[c]) {
            lmk_predictor::tree pt;
            pt.split_off = (uint32_t)p.splits.size();
            pt.n_splits = (uint32_t)t.splits.size();
            pt.leaf_off = p.leaves.size();
            p.trees.push_back(pt);
            for (const dlib::impl::split_feature &sf : t.splits) {
                lmk_predictor::split ps;
                ps.idx1 = (uint32_t)sf.idx1;
                ps.idx2 = (uint32_t)sf.idx2;
                ps.thresh = sf.thresh;
                p.splits.push_back(ps);
            }
            for (const dlib::matrix<float, 0, 1> &l : t.leaf_values)
                for (long k = 0; k < p.dim; k++) p.leaves.push_back(l(k));
            /* free as we go: the forests and the copy are 65 MB each */
            std::vector<dlib::impl::split_feature>().swap(t.splits);
            std::vector<dlib::matrix<float, 0, 1>>().swap(t.leaf_values);
        }
    }
    return std::string();
}

std::shared_ptr<const lmk_predictor> load_predictor(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        set_err(err, errlen, "%s: cannot open the shape predictor: %s", path, strerror(errno));
        return nullptr;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, errlen, "%s: the shape predictor is not a regular file", path);
        return nullptr;
    }
    file_key key(st.st_dev, st.st_ino, st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    std::lock_guard<std::mutex> lock(g_cache_mu);
    auto it = g_cache.find(key);
    if (it != g_cache.end()) {
        std::shared_ptr<const lmk_predictor> sp = it->second.lock();
        if (sp) return sp;
        g_cache.erase(it);
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        set_err(err, errlen, "%s: cannot open the shape predictor: %s", path, strerror(errno));
        return nullptr;
    }
    auto sp = std::make_shared<lmk_predictor>();
    std::string problem;
    try {
        problem = read_predictor(in, *sp);
    } catch (const std::bad_alloc &) {
        set_err(err, errlen, "%s: out of memory reading the shape predictor", path);
        return nullptr;
    } catch (const std::exception &e) {
        /* dlib's messages span lines; keep the first. */
        std::string msg = e.what();
        size_t a = msg.find_first_not_of(" \t\r\n");
        msg = a == std::string::npos ? std::string("unknown error") : msg.substr(a);
        size_t nl = msg.find('\n');
        if (nl != std::string::npos) msg.resize(nl);
        problem = "not a dlib shape predictor file (" + msg + ")";
    }
    if (!problem.empty()) {
        set_err(err, errlen, "%s: %s", path, problem.c_str());
        return nullptr;
    }
    g_cache[key] = sp;
    return sp;
}

bool valid_image(const image *img)
{
    return img && img->px && img->w > 0 && img->h > 0 && (img->c == 1 || img->c == 3) &&
           (double)img->w * img->h <= (double)IMAGE_MAX_PIXELS;
}

void to_grey(const image *img, dlib::array2d<unsigned char> &g)
{
    g.set_size(img->h, img->w);
    const uint8_t *p = img->px;
    if (img->c == 1) {
        for (int y = 0; y < img->h; y++) {
            unsigned char *row = &g[y][0];
            std::memcpy(row, p + (size_t)y * img->w, (size_t)img->w);
        }
        return;
    }
    for (int y = 0; y < img->h; y++) {
        unsigned char *row = &g[y][0];
        const uint8_t *s = p + (size_t)y * img->w * 3;
        for (int x = 0; x < img->w; x++, s += 3)
            row[x] = (unsigned char)(((unsigned)s[0] + s[1] + s[2]) / 3u);
    }
}

/* Upsamples m->grey `levels` times into m->up (m->grey itself when levels is
 * 0 is signalled by the return value); fills the per-level scales. Returns the
 * image to use, or nullptr when it would be too large. */
const dlib::array2d<unsigned char> *upsample(lmk_model *m, int levels, std::vector<level_scale> &scales)
{
    scales.clear();
    if (levels == 0) return &m->grey;
    double w = (double)m->grey.nc(), h = (double)m->grey.nr();
    for (int i = 0; i < levels; i++) {
        w = 2 * w + 2;
        h = 2 * h + 2;
    }
    if (w * h > MAX_UP_PIXELS) return nullptr;
    const dlib::array2d<unsigned char> *src = &m->grey;
    for (int i = 0; i < levels; i++) {
        dlib::array2d<unsigned char> &dst = (i % 2 == 0) ? m->up : m->tmp;
        dlib::pyramid_up(*src, dst, m->pyr);
        level_scale s;
        s.sx = dst.nc() > 1 ? (double)(src->nc() - 1) / (double)(dst.nc() - 1) : 1.0;
        s.sy = dst.nr() > 1 ? (double)(src->nr() - 1) / (double)(dst.nr() - 1) : 1.0;
        scales.push_back(s);
        src = &dst;
    }
    return src;
}

/* Total scale from the top level to the original image (the mapping is
 * linear through the origin at every level, so the product). */
void total_scale(const std::vector<level_scale> &scales, double *sx, double *sy)
{
    *sx = 1;
    *sy = 1;
    for (const level_scale &s : scales) {
        *sx *= s.sx;
        *sy *= s.sy;
    }
}

/* A box (x, y, w, h: pixels x..x+w-1, i.e. continuous pixel-centre extent
 * [x - 0.5, x + w - 0.5]) to dlib's inclusive integer rectangle in an image
 * scaled by 1/(sx, sy). */
dlib::rectangle box_to_rect(const double box[4], double sx, double sy)
{
    double l = (box[0] - 0.5) / sx + 0.5, r = (box[0] + box[2] - 0.5) / sx - 0.5;
    double t = (box[1] - 0.5) / sy + 0.5, b = (box[1] + box[3] - 0.5) / sy - 0.5;
    long L = std::lround(l), R = std::lround(r), T = std::lround(t), B = std::lround(b);
    if (R < L) R = L;
    if (B < T) B = T;
    return dlib::rectangle(L, T, R, B);
}

void rect_to_box(const dlib::rectangle &r, double sx, double sy, double box[4])
{
    box[0] = (r.left() - 0.5) * sx + 0.5;
    box[1] = (r.top() - 0.5) * sy + 0.5;
    box[2] = (double)(r.right() - r.left() + 1) * sx;
    box[3] = (double)(r.bottom() - r.top() + 1) * sy;
}

/* dlib::shape_predictor::operator()(img, rect) with the points left
 * unrounded, in img's pixel coordinates. */
void run_predictor(lmk_model *m, const dlib::array2d<unsigned char> &img, const dlib::rectangle &rect,
                   std::vector<dlib::dpoint> &parts)
{
    const lmk_predictor &p = *m->sp;
    dlib::matrix<float, 0, 1> &shape = m->shape;
    shape = p.initial_shape;
    std::vector<float> &feat = m->features;
    std::vector<const float *> &leaf = m->leaf;
    for (size_t c = 0; c < p.levels.size(); c++) {
        dlib::impl::extract_feature_pixel_values(img, rect, shape, p.initial_shape, p.anchor_idx[c], p.deltas[c],
                                                 feat);
        const lmk_predictor::level &lv = p.levels[c];
        leaf.resize(lv.n_trees);
        /* Walk every tree of the level (the features do not change within it),
         * prefetching each chosen leaf vector ... */
        for (uint32_t t = 0; t < lv.n_trees; t++) {
            const lmk_predictor::tree &tr = p.trees[lv.tree_off + t];
            const lmk_predictor::split *node = &p.splits[tr.split_off];
            uint32_t i = 0;
            while (i < tr.n_splits) {
                const lmk_predictor::split &s = node[i];
                i = (float)feat[s.idx1] - (float)feat[s.idx2] > s.thresh ? 2 * i + 1 : 2 * i + 2;
            }
            const float *l = &p.leaves[tr.leaf_off + (size_t)(i - tr.n_splits) * (size_t)p.dim];
            leaf[t] = l;
            for (long k = 0; k < p.dim; k += 16) __builtin_prefetch(l + k);
            __builtin_prefetch(l + p.dim - 1);
        }
        /* ... then add them in dlib's order. */
        float *cur = &shape(0);
        const long dim = p.dim;
        for (uint32_t t = 0; t < lv.n_trees; t++) {
            const float *l = leaf[t];
            for (long k = 0; k < dim; k++) cur[k] += l[k];
        }
    }
    const dlib::point_transform_affine to_img = dlib::impl::unnormalizing_tform(rect);
    parts.resize((size_t)p.dim / 2);
    for (size_t i = 0; i < parts.size(); i++) parts[i] = to_img(dlib::impl::location(shape, i));
}

/* Runs the predictor on img (scaled by 1/(sx, sy) from the original) in the
 * rectangle and writes the points in original coordinates. false when a
 * point is not finite. */
bool fit(lmk_model *m, const dlib::array2d<unsigned char> &img, const dlib::rectangle &rect, double sx, double sy,
         face_fit *out)
{
    std::vector<dlib::dpoint> &parts = m->parts;
    run_predictor(m, img, rect, parts);
    if (parts.size() != 68) return false;
    for (size_t i = 0; i < 68; i++) {
        double x = parts[i].x() * sx, y = parts[i].y() * sy;
        if (!std::isfinite(x) || !std::isfinite(y)) return false;
        out->pts[i][0] = x;
        out->pts[i][1] = y;
    }
    return true;
}

} // namespace

extern "C" {

lmk_model *lmk_load(const char *predictor_path, char *err, size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!predictor_path || !predictor_path[0]) predictor_path = LMK_DEFAULT_PREDICTOR;
    try {
        std::shared_ptr<const lmk_predictor> sp = load_predictor(predictor_path, err, errlen);
        if (!sp) return nullptr;
        std::unique_ptr<lmk_model> m(new lmk_model());
        m->sp = sp;
        {
            std::lock_guard<std::mutex> lock(g_cache_mu);
            if (!g_detector) g_detector.reset(new dlib::frontal_face_detector(dlib::get_frontal_face_detector()));
            m->det = *g_detector;
        }
        return m.release();
    } catch (const std::bad_alloc &) {
        set_err(err, errlen, "%s: out of memory loading the landmark model", predictor_path);
    } catch (const std::exception &e) {
        set_err(err, errlen, "%s: cannot load the landmark model: %s", predictor_path, e.what());
    } catch (...) {
        set_err(err, errlen, "%s: cannot load the landmark model", predictor_path);
    }
    return nullptr;
}

void lmk_free(lmk_model *m)
{
    if (!m) return;
    delete m; /* the last model of a predictor frees it; the cache holds weak pointers */
}

int lmk_detect(lmk_model *m, const image *img, int upsample_levels, face_fit *out)
{
    if (!m || !out || !valid_image(img) || upsample_levels < 0 || upsample_levels > MAX_UPSAMPLE) return -1;
    try {
        to_grey(img, m->grey);
        std::vector<level_scale> scales;
        const dlib::array2d<unsigned char> *up = upsample(m, upsample_levels, scales);
        if (!up) return -1;
        m->det(*up, m->dets, 0.0);
        if (m->dets.empty()) return 0;
        size_t best = 0;
        for (size_t i = 1; i < m->dets.size(); i++) {
            double a = (double)m->dets[i].rect.area(), b = (double)m->dets[best].rect.area();
            if (a > b || (a == b && m->dets[i].detection_confidence > m->dets[best].detection_confidence))
                best = i;
        }
        double sx, sy;
        total_scale(scales, &sx, &sy);
        face_fit f;
        rect_to_box(m->dets[best].rect, sx, sy, f.box);
        f.score = m->dets[best].detection_confidence;
        if (!fit(m, *up, m->dets[best].rect, sx, sy, &f)) return -1;
        *out = f;
        return 1;
    } catch (...) {
        return -1;
    }
}

int lmk_fit_box(lmk_model *m, const image *img, const double box[4], face_fit *out)
{
    if (!m || !out || !box || !valid_image(img)) return -1;
    for (int i = 0; i < 4; i++)
        if (!std::isfinite(box[i]) || std::fabs(box[i]) > 1e6) return -1;
    if (box[2] <= 0 || box[3] <= 0) return -1;
    try {
        to_grey(img, m->grey);
        int levels = (box[2] < FIT_UPSAMPLE_BELOW || box[3] < FIT_UPSAMPLE_BELOW) && img->w > 1 && img->h > 1 ? 1 : 0;
        std::vector<level_scale> scales;
        const dlib::array2d<unsigned char> *up = upsample(m, levels, scales);
        if (!up) up = upsample(m, 0, scales); /* too large to upsample: fit on the original */
        double sx, sy;
        total_scale(scales, &sx, &sy);
        face_fit f;
        for (int i = 0; i < 4; i++) f.box[i] = box[i];
        f.score = 0;
        if (!fit(m, *up, box_to_rect(box, sx, sy), sx, sy, &f)) return -1;
        *out = f;
        return 1;
    } catch (...) {
        return -1;
    }
}

/* The fallback box: the box in which the dlib mean face sits where aligned
 * crops put a face.
 *
 * The dlib mean shape (initial_shape of shape_predictor_68_face_landmarks.dat,
 * in box units where (0,0) and (1,1) are the box's first and last pixels):
 *   P0 (0.0294, 0.3220), P16 (0.9706, 0.3219), P8 (0.5000, 1.0697),
 *   brow peaks P19 / P24 at y 0.1627.
 * Where aligned crops put the face (RAF-DB's 5-point similarity-aligned
 * 100x100 crops, FER2013's 48x48 crops, and this project's fixture generator,
 * face.c: box side 0.74-0.86 of the crop, box point (0.5, 0.55) at the crop's
 * (0.5, 0.55)), as fractions of the crop (continuous coordinates):
 *   P0 / P16 at x 0.124 / 0.876, brow peaks at y 0.240, chin P8 at y 0.966.
 * Solving box_x + u * box_w = X for P0 and P16, and box_y + v * box_h = Y for
 * the brow peaks and P8:
 *   box_w = (0.876 - 0.124) / (0.9706 - 0.0294) W = 0.799 W,
 *   box_x = 0.124 W - 0.0294 * 0.799 W             = 0.100 W,
 *   box_h = (0.966 - 0.240) / (1.0697 - 0.1627) H  = 0.800 H,
 *   box_y = 0.240 H - 0.1627 * 0.800 H             = 0.110 H.
 * So the box is (0.10 W, 0.11 H, 0.80 W, 0.80 H): the mean face then has
 * P0/P16 at 0.12/0.88 of the width, the brow peaks at 0.24, the eyes at 0.36,
 * the mouth at 0.73 and the chin at 0.966 of the height. For a non-square
 * crop the box stays square (a face is not stretched by the crop): its side
 * is 0.80 * min(W, H), centred on the same crop point (0.5 W, 0.55 H).
 * In landmarks.h's convention a box covers pixels x..x+w-1, the continuous
 * extent [x, x + w), so these fractions are the box as is; dlib maps box
 * units 0 and 1 to the centres of the first and last pixels, which moves the
 * mean face by less than half a pixel. */
void lmk_fallback_box(int w, int h, double box[4])
{
    if (!box) return;
    double W = w > 0 ? w : 0, H = h > 0 ? h : 0;
    double s = 0.80 * (W < H ? W : H);
    box[0] = 0.50 * W - 0.50 * s;
    box[1] = 0.55 * H - 0.55 * s;
    box[2] = s;
    box[3] = s;
}

} /* extern "C" */

/* ---- dlib's own shape_predictor, for the parity test ------------------------
 * lmk_fit_box evaluates dlib's model with its own compact tree walk (faster,
 * same arithmetic). This runs dlib::shape_predictor itself on the same pixels
 * and box, so tests can check the two agree on every image they try. */
struct lmk_reference {
    dlib::shape_predictor sp;
};

extern "C" {

lmk_reference *lmk_reference_load(const char *predictor_path, char *err, size_t errlen)
{
    try {
        auto *r = new lmk_reference;
        dlib::deserialize(predictor_path) >> r->sp;
        return r;
    } catch (std::exception &e) {
        set_err(err, errlen, "%s: %s", predictor_path, e.what());
        return nullptr;
    }
}

void lmk_reference_free(lmk_reference *r) { delete r; }

int lmk_reference_fit(lmk_reference *r, lmk_model *m, const image *img, const double box[4], double pts[68][2])
{
    if (!r || !m || !valid_image(img) || !box || box[2] <= 0 || box[3] <= 0) return -1;
    try {
        /* The same grey image, upsampling and box mapping as lmk_fit_box. */
        to_grey(img, m->grey);
        int levels = (box[2] < FIT_UPSAMPLE_BELOW || box[3] < FIT_UPSAMPLE_BELOW) && img->w > 1 && img->h > 1 ? 1 : 0;
        std::vector<level_scale> scales;
        const dlib::array2d<unsigned char> *up = upsample(m, levels, scales);
        if (!up) up = upsample(m, 0, scales);
        double sx, sy;
        total_scale(scales, &sx, &sy);
        dlib::full_object_detection d = r->sp(*up, box_to_rect(box, sx, sy));
        if (d.num_parts() != 68) return -1;
        for (int i = 0; i < 68; i++) {
            pts[i][0] = (double)d.part((unsigned long)i).x() * sx;
            pts[i][1] = (double)d.part((unsigned long)i).y() * sy;
        }
        return 1;
    } catch (...) {
        return -1;
    }
}

} // extern "C"
