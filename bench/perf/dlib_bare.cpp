// dlib_bare.cpp: the bare-dlib peer for masksynth's landmark speed. For each
// image on the command line: decode with dlib's load_image into 8-bit grey
// (dlib's (r + g + b) / 3, the pixels masksynth's landmarks.cpp uses), upsample
// with pyramid_up as dlib's face_landmark_detection_ex does, run the HOG
// frontal face detector, and fit the 68-point shape predictor in the largest
// box, on the upsampled image. One thread. Prints one line of key=value pairs:
//
//   dlib_bare images=N bad=B faces=F upsample=U repeat=R seconds=S images_per_s=X
//       detect_landmarks_images_per_s=Y load_predictor_s=L
//
// images_per_s counts decode + upsample + detect + 68 points; the other rate
// leaves the decode out. Images that fail to decode count as bad (a message on
// stderr) and the run goes on.
//
//   dlib_bare [--upsample N] [--repeat R] [--predictor FILE] [--list FILE|-] [IMAGE...]
//
// --list reads more image paths, one a line ("-": standard input), for folders
// too large for a command line.
#include <dlib/image_io.h>
#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void usage(const char *argv0)
{
    std::fprintf(stderr, "usage: %s [--upsample N] [--repeat R] [--predictor FILE] [--list FILE|-] [IMAGE...]\n",
                 argv0);
}

} // namespace

int main(int argc, char **argv)
{
    int upsample = 1, repeat = 1;
    std::string predictor = "/usr/share/dlib/shape_predictor_68_face_landmarks.dat";
    std::vector<std::string> paths;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if ((a == "--upsample" || a == "--repeat" || a == "--predictor" || a == "--list") && i + 1 < argc) {
            std::string v = argv[++i];
            if (a == "--predictor") {
                predictor = v;
                continue;
            }
            if (a == "--list") {
                std::ifstream f;
                if (v != "-") {
                    f.open(v);
                    if (!f) {
                        std::fprintf(stderr, "dlib_bare: cannot read %s\n", v.c_str());
                        return 2;
                    }
                }
                std::istream &in = v == "-" ? std::cin : f;
                std::string line;
                while (std::getline(in, line)) {
                    if (!line.empty() && line.back() == '\r') line.pop_back();
                    if (!line.empty()) paths.push_back(line);
                }
                continue;
            }
            char *end = nullptr;
            long n = std::strtol(v.c_str(), &end, 10);
            if (!end || *end || n < (a == "--upsample" ? 0 : 1) || n > (a == "--upsample" ? 4 : 1000000)) {
                std::fprintf(stderr, "dlib_bare: bad value for %s: %s\n", a.c_str(), v.c_str());
                return 2;
            }
            (a == "--upsample" ? upsample : repeat) = (int)n;
        } else if (a == "-h" || a == "--help") {
            usage(argv[0]);
            return 0;
        } else if (!a.empty() && a[0] == '-') {
            usage(argv[0]);
            return 2;
        } else {
            paths.push_back(a);
        }
    }
    if (paths.empty()) {
        usage(argv[0]);
        return 2;
    }

    dlib::shape_predictor sp;
    dlib::frontal_face_detector detector;
    auto t_load = std::chrono::steady_clock::now();
    try {
        dlib::deserialize(predictor) >> sp;
        detector = dlib::get_frontal_face_detector();
    } catch (const std::exception &e) {
        std::fprintf(stderr, "dlib_bare: %s: %s\n", predictor.c_str(), e.what());
        return 1;
    }
    double load_s = seconds_since(t_load);

    long images = 0, bad = 0, faces = 0;
    double work_s = 0;
    unsigned long checksum = 0; // keeps the fits observable
    auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < repeat; r++) {
        for (const std::string &path : paths) {
            dlib::array2d<unsigned char> img;
            try {
                dlib::load_image(img, path);
            } catch (const std::exception &e) {
                if (r == 0) std::fprintf(stderr, "dlib_bare: %s: %s\n", path.c_str(), e.what());
                bad++;
                continue;
            }
            auto t1 = std::chrono::steady_clock::now();
            for (int u = 0; u < upsample; u++) dlib::pyramid_up(img);
            std::vector<dlib::rect_detection> dets;
            detector(img, dets);
            if (!dets.empty()) {
                size_t best = 0;
                for (size_t i = 1; i < dets.size(); i++)
                    if (dets[i].rect.area() > dets[best].rect.area()) best = i;
                dlib::full_object_detection shape = sp(img, dets[best].rect);
                checksum += (unsigned long)(shape.part(30).x() + shape.part(8).y());
                faces++;
            }
            work_s += seconds_since(t1);
            images++;
        }
    }
    double total_s = seconds_since(t0);
    std::printf("dlib_bare images=%ld bad=%ld faces=%ld upsample=%d repeat=%d seconds=%.4f images_per_s=%.1f "
                "detect_landmarks_images_per_s=%.1f load_predictor_s=%.3f checksum=%lu\n",
                images, bad, faces, upsample, repeat, total_s, total_s > 0 ? images / total_s : 0.0,
                work_s > 0 ? images / work_s : 0.0, load_s, checksum);
    return images > 0 ? 0 : 1;
}
