/* ferbench.h: the commands of the ferbench tool and what they share
 * (model options, threads, checkpoints). */
#ifndef FB_FERBENCH_H
#define FB_FERBENCH_H

#include <stddef.h>

#include "../common/cli.h"
#include "../engine/backend.h"
#include "../engine/data.h"
#include "../engine/model.h"
#include "../engine/net.h"

struct sqlite3;

extern const char *ferbench_argv_json; /* the command line, for tool_runs */
extern const cli_command ferbench_commands[]; /* commands.c: the table cli_main runs */

int cmd_train(const cli_args *a);
int cmd_run(const cli_args *a);
int cmd_bench(const cli_args *a);
/* `ferbench report`: tables, confusion matrices, McNemar + Holm and timing from the database (report.c). */
int cmd_report(const cli_args *a);
/* `ferbench run --model NAME --predictions F`: a baseline's exported predictions, checked against the split
 * and written in the canonical form (import.c). */
int cmd_import(const cli_args *a);

/* One model's predictions of a split, from `run` (ours) or an import: what the canonical CSV and the
 * database rows are written from (predout.c). */
typedef struct {
    const char *model;                       /* 'ours', or the imported model's name */
    const char *weights_path, *weights_hash; /* ours: the weights used (SHA-256); NULL for imports */
    const char *source_path, *source_hash;   /* imports: the file read (SHA-256); NULL for ours */
    const int *pred;                         /* one class index per split item */
    const double *prob;                      /* n x nclasses in the split's label order, or NULL */
    int has_timing;                          /* a timings row: only for what ran here */
    int batch;
    double ms_per_image, images_per_s;
    long peak_bytes;
    const char *device;
} split_predictions;

/* The canonical predictions CSV of sp (probability columns only when p->prob), written atomically. */
int predictions_write_csv(const char *path, const data_split *sp, const split_predictions *p, char *err,
                          size_t errlen);
/* In one transaction: a tool_runs row, the model_runs row (out: the CSV written; the mask assignment from
 * sp->mode / mode_seed), one predictions row per item and the timings row. -1 with a message, nothing
 * written. */
int predictions_record(struct sqlite3 *db, const data_split *sp, const split_predictions *p, const char *out,
                       char *err, size_t errlen);

/* --config NAME (default def) with optional --size / --width overrides.
 * name gets the config's name ("custom" when overridden). 0, or -1 after a
 * message (exit 2). */
int model_options(const cli_args *a, const char *def, model_config *cfg, char *name, size_t namelen);
/* --threads N (default: online CPUs) applied to the engine; -1 after a message. */
int threads_option(const cli_args *a, int *threads);
/* --device, --precision, --deterministic, --graphs and --threads: the
 * backend to run on, or NULL after a message (exit 2). backend_close() it. */
backend *device_option(const cli_args *a);
/* "graphs=STATE graph_launches=N prefetched=N" for a command's summary line
 * (STATE: on, none, failed; prefetched: uploads that took a copy started
 * during the step before, backend.h); once per net, a warning with the
 * reason when a recording failed (its passes then ran op by op: slower,
 * same results). */
const char *device_summary(net *t, char *buf, size_t len);
/* data_loader_next, then net_prefetch of that batch (its targets too when
 * train): called once this step's work is queued, so that the batch's copy
 * to the device overlaps it. The caller holds two batches meanwhile. */
int next_batch_prefetched(data_loader *l, net *t, int train, data_batch **b);
/* One eval step of a loader loop: net_forward of b, then the next batch
 * (next_batch_prefetched into *next, its result into *r) while the forward
 * runs, then b's logits. NULL when the forward or the download failed (then
 * *r is untouched unless the forward was queued); *next is NULL unless a
 * batch came, and the caller releases both batches. */
const float *eval_step_prefetching(net *t, data_loader *l, const data_batch *b, data_batch **next, int *r);


/* Training state kept in a checkpoint's metadata beside the weights and the
 * AdamW moments. */
typedef struct {
    int next_epoch;      /* epochs completed */
    long step;           /* AdamW steps taken */
    int best_epoch;      /* -1 before the first validation */
    double best_acc;
    int bad_epochs;      /* epochs since the best (early stopping) */
    long long train_run_id;
    char fingerprint[2048]; /* the options a resume must repeat */
} train_state;

/* Checkpoint: one safetensors file holding the weights (names as MODEL.md),
 * "adamw.m." and "adamw.v." moments, and train_state in __metadata__.
 * Written atomically. */
int ckpt_write(const char *path, const model_params *p, float *m, float *v, const train_state *s, char *err,
               size_t errlen);
/* Reads a checkpoint written by ckpt_write into p, m, v, s. */
int ckpt_read(const char *path, model_params *p, float *m, float *v, train_state *s, char *err, size_t errlen);

/* Weights for inference: a plain weights file, or a checkpoint (its moments
 * are ignored). When cfg_given is 0, the configuration comes from the file's
 * ferbench.size / ferbench.width metadata; otherwise they must agree. p is
 * initialised here. */
int weights_load(const char *path, const model_config *cfg, int cfg_given, model_params *p, char *err,
                 size_t errlen);

#endif
