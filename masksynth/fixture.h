/* fixture.h: synthetic datasets in the exact official layouts of RAF-DB basic
 * and FER+ (DATASETS.md), with their traps, drawn faces (face.h) and the
 * ground truth the real datasets lack (landmarks, identities, planted
 * near-duplicates, expected per-class counts).
 *
 * fixture_write(layout, n, seed, out_dir) creates out_dir (mkdir -p) and
 * writes, byte-identical for the same (layout, n, seed) at any thread count:
 *
 * rafdb (n images, 80 / 20 train / test, class shares of RAF-DB's counts;
 * n = 15,339 gives exactly RAF-DB's per-class counts):
 *   EmoLabel/list_patition_label.txt  "train_00001.jpg 5", train lines then
 *                                      test lines; some lines end in CRLF
 *   Image/aligned/<stem>_aligned.jpg   100x100 RGB JPEG, quality 95
 *   landmarks.csv    image,x0,y0,...,x67,y67  (image = train_00001.jpg)
 *   identities.csv   image,identity
 *   duplicates.csv   image_a,image_b   planted near-duplicates, train / test
 *   protocol.csv     split,label,count  (train, test; labels surprise..neutral)
 *
 * ferplus (n rows; Training / PublicTest / PrivateTest as 28709 / 3589 / 3589):
 *   fer2013.csv      emotion,pixels,Usage (CRLF line ends; emotion = the
 *                    FER2013 code of the drawn expression, random for non-faces)
 *   fer2013new.csv   Usage,Image name,neutral,...,NF (LF). Names are their own
 *                    numbering (empty-name rows take no number, a few numbers
 *                    are skipped): from row 4 on, name != row index.
 *   FER2013Train/ FER2013Valid/ FER2013Test/   fer%07d.png 48x48 grey, as
 *                    FER+'s generate_training_data.py writes them, and
 *                    label.csv (name,"(0, 0, 48, 48)",10 votes; sorted by
 *                    name; one line per name, votes of its first row)
 *   landmarks.csv    row,x0,y0,...  (fer2013.csv row index; face rows only)
 *   identities.csv   image,identity,row  (image = the PNG name; face rows only)
 *   duplicates.csv   image_a,image_b,row_a,row_b  (Training / PrivateTest)
 *   protocol.csv     split,label,count  (train, val, test = FER2013Train,
 *                    Valid, Test: label.csv votes, majority rule, 7 classes)
 *   Traps: NF=10 rows with an empty name (no PNG); one name used by two
 *   PrivateTest rows, the second a non-face with NF=10 (its PNG overwrites the
 *   first's, as FER+'s script does; label.csv keeps the first row's votes);
 *   one Training row whose votes sum to 9; rows kept only because single votes
 *   are dropped; rows without a majority (unknown); contempt-majority rows;
 *   named non-faces with an NF majority.
 *
 * Returns 0, or -1 with err filled ("path: reason"). */
#ifndef FB_FIXTURE_H
#define FB_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#define FIXTURE_MIN_N 50L
#define FIXTURE_MAX_N_RAFDB 49990L    /* test names have 4 digits */
#define FIXTURE_MAX_N_FERPLUS 1000000L

int fixture_write(const char *layout, long n, uint64_t seed, const char *out_dir, char *err, size_t errlen);

/* Drawing threads for later fixture_write calls; 0 (the default) = one per
 * online CPU, at most 16. The output never depends on it. */
void fixture_set_threads(int n);

/* The vote columns of fer2013new.csv and label.csv, in order. */
extern const char *const fixture_ferplus_columns[10];

/* The majority rule itself is ingest.h's ferplus_majority: one rule for both. */

#endif
