/* commands.c: the ferbench commands and their options (main.c runs them; so
 * does the import's fuzz target, tests/fuzz/fuzz_import.c). */
#include "../common/cli.h"
#include "ferbench.h"

const char *ferbench_argv_json;

#define MODEL_OPTS                                                                                                \
    {"config", "NAME", "fopm (224, width 1.0; the paper) or fopm-tiny (64, 0.125)"},                              \
        {"size", "S", "input side override (multiple of 32)"}, {"width", "W", "channel multiplier override"},     \
        {"threads", "N", "CPU threads (default: all; results are identical at any count)"},                       \
        {"device", "D", "cpu (default), cuda or cuda:N (needs bin/libfbcuda.so, built when nvcc is found); "      \
                        "cpu-staged: the CPU posing as a device (a check of the GPU data paths)"},                  \
        {"precision", "P", "cuda: fp32 (default), tf32 or bf16 (BF16 convolutions, FP32 master weights)"},       \
        {"deterministic", NULL, "cuda: only algorithms that give bit-identical reruns"},                        \
        {"graphs", "on|off", "cuda: replay each repeated pass as one CUDA graph (default on; same results)"},    \
        {"prefetch", "on|off", "cuda: copy the next batch to the GPU during this step (default on; same results)"}

static const cli_opt train_opts[] = {
    {"model", "ours", "the model to train (only MODEL.md's network, 'ours')"},
    MODEL_OPTS,
    {"db", "FILE", "database (default db/ferbench.sqlite)"},
    {"dataset", "NAME", "dataset (default: the only one)"},
    {"mode", "MODE[:SEED]", "which renders (default: the only mask assignment rendered)"},
    {"out", "DIR", "checkpoints and log.csv (required)"},
    {"epochs", "N", "at most N epochs (default 300)"},
    {"batch", "N", "batch size (default 16; the last partial batch is dropped)"},
    {"lr", "X", "AdamW learning rate (default 0.002)"},
    {"lr-step", "N", "multiply the learning rate by --lr-gamma every N epochs (default 6)"},
    {"lr-gamma", "X", "default 0.2"},
    {"weight-decay", "X", "decoupled weight decay (default 1e-4)"},
    {"patience", "N", "stop after N epochs without a better validation accuracy (default 20)"},
    {"seed", "N", "initialisation, order and flips (default 42)"},
    {"resume", NULL, "continue DIR/last.ckpt.safetensors after an interruption"},
    {0},
};

static const cli_opt run_opts[] = {
    {"model", "NAME", "'ours' (default) runs here; another name imports that baseline's --predictions"},
    {"weights", "FILE", "ours: safetensors weights or a training checkpoint (required)"},
    MODEL_OPTS,
    {"db", "FILE", "database (default db/ferbench.sqlite)"},
    {"dataset", "NAME", "dataset (default: the only one)"},
    {"mode", "MODE[:SEED]", "which renders, i.e. masks (default: the only mask assignment rendered); an import "
                            "records the one its baseline was evaluated on"},
    {"split", "S", "train, val or test (default test)"},
    {"batch", "N", "batch size (default 16)"},
    {"out", "P.csv", "predictions CSV (required)"},
    {"predictions", "F", "import: a baseline's exported predictions (CSV) for the split"},
    {"image-col", "C", "import: the image column, a header name or a number from 1 (default 'image')"},
    {"label-col", "C", "import: ground truth to check against the database (default 'label' if present)"},
    {"pred-col", "C", "import: predicted class, a name or an index (default 'pred' if present)"},
    {"score-cols", "PREFIX*|C,C...", "import: per-class scores, by prefix (suffixes name the classes) or "
                                       "listed in --classes order (default prob_* / logit_*)"},
    {"score-kind", "K", "import: probs (default) or logits (softmax applied)"},
    {"classes", "LIST", "import: what indices mean: rafdb (default), ferplus, fer2013, or names a,b,..."},
    {"index-base", "N", "import: 0 (default) or 1, the index of the first class"},
    {"no-header", NULL, "import: the file has no header row; columns are numbers"},
    {0},
};

static const cli_opt bench_opts[] = {
    MODEL_OPTS,
    {"batch", "N[,N...]", "batch sizes (default 16)"},
    {"mode", "M", "infer, train or both (default both)"},
    {"iters", "N", "timed repetitions, the median is reported (default 5)"},
    {"warmup", "N", "untimed repetitions first (default 1)"},
    {"profile", NULL, "then --iters more repetitions with each op timed alone: a 'profile' line per op kind"},
    {0},
};

static const cli_opt report_opts[] = {
    {"db", "FILE", "database to read (default db/ferbench.sqlite; it must exist)"},
    {"split", "S", "train, val or test (default test)"},
    {"dataset", "NAME", "one dataset (default: every dataset with model runs on the split, by name)"},
    {"models", "A,B,...", "the models to report, in this order (default: all with a run on the split, the "
                          "reference first, then by name)"},
    {"reference", "NAME", "the model the others are compared with (default: ours when present, else the first)"},
    {"method", "M", "McNemar variant: midp (default), exact, chi2 or chi2-cc"},
    {"adjust", "A", "multiple-comparison adjustment per dataset: holm (default), bonferroni or none"},
    {"alpha", "A", "significance level; intervals are at 1 - A (default 0.05)"},
    {"resamples", "N", "bootstrap resamples of the macro-F1 intervals (default 2000)"},
    {"seed", "N", "bootstrap seed (default 42)"},
    {"threads", "N", "bootstrap threads (default: all; results are identical at any count)"},
    {"out", "DIR", "folder for report.md, index.html, report.json and the SVGs (required; created if missing)"},
    {0},
};
const cli_command ferbench_commands[] = {
    {"train", "", "train MODEL.md's network (FOPM + EFFM + FERM) with the paper's protocol", train_opts, 0, 0,
     cmd_train},
    {"run", "", "predict a split with trained weights: predictions CSV, database rows, timing", run_opts, 0, 0,
     cmd_run},
    {"bench", "", "inference and training-step speed of the engine", bench_opts, 0, 0, cmd_bench},
    {"report", "", "paper-style tables, confusion matrices, McNemar + Holm and timing from the database: "
     "Markdown, HTML, SVG and JSON", report_opts, 0, 0, cmd_report},
    {0},
};

