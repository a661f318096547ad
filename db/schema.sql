-- ferbench database, schema version 1; later versions are the migrations in db/db.c, applied in order
-- (version 2: model_runs.source_path, source_hash, mask_mode, mask_seed).
-- Applied once to a new file by db_open() inside one transaction; the C layer sets PRAGMA user_version.
-- Conventions: timestamps are ISO-8601 UTC text; hashes are lowercase hex text; labels and predictions are
-- class indices in RAF-DB order (0 surprise .. 6 neutral; 7 is FER+ contempt when 8 classes are kept);
-- JSON columns must be valid JSON. Rows owned by a parent go with it (ON DELETE CASCADE); rows that only
-- refer to something (a pattern, a tool run) keep it alive or forget it (ON DELETE SET NULL).

-- One ingested copy of a dataset. vote_source says which FER+ votes file was used (FER+ only).
CREATE TABLE datasets (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('rafdb', 'ferplus', 'csv')),
    root        TEXT NOT NULL,
    vote_source TEXT CHECK (vote_source IN ('fer2013new', 'label_csv')),
    settings    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(settings)),  -- init options and the protocol report
    CHECK (vote_source IS NULL OR kind = 'ferplus')
);

-- Groups of images believed to show one person (from --identities or near-duplicate detection).
CREATE TABLE identity_groups (
    id         INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    source     TEXT NOT NULL CHECK (source IN ('csv', 'phash', 'manifest')),
    name       TEXT,                           -- external identity name for 'csv' groups
    UNIQUE (dataset_id, name)
);
CREATE INDEX identity_groups_dataset ON identity_groups(dataset_id);

-- Every image kept by ingestion. benchmark_split is NULL until a split recipe has been applied.
-- status: 'ok', or why the image cannot be used ('missing' file, undecodable 'bad_image').
CREATE TABLE images (
    id                INTEGER PRIMARY KEY,
    dataset_id        INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    rel_path          TEXT NOT NULL,
    content_hash      TEXT,
    size_bytes        INTEGER CHECK (size_bytes >= 0),
    width             INTEGER CHECK (width > 0),
    height            INTEGER CHECK (height > 0),
    label             INTEGER NOT NULL CHECK (label BETWEEN 0 AND 7),
    official_split    TEXT NOT NULL CHECK (official_split IN ('train', 'val', 'test')),
    benchmark_split   TEXT CHECK (benchmark_split IN ('train', 'val', 'test')),
    identity_group_id INTEGER REFERENCES identity_groups(id) ON DELETE SET NULL,
    status            TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'missing', 'bad_image')),
    message           TEXT,                    -- why the status is not 'ok'
    phash             TEXT,                    -- 16 hex digits: perceptual hash of the grey face
    UNIQUE (dataset_id, name)
);
CREATE INDEX images_split ON images(dataset_id, benchmark_split, label);
CREATE INDEX images_identity ON images(identity_group_id);
CREATE INDEX images_hash ON images(content_hash);

-- Source rows that ingestion refused, with the reason and where they came from (no silent drops).
-- name may be empty: fer2013new.csv has rows without an image name.
CREATE TABLE dropped_images (
    id          INTEGER PRIMARY KEY,
    dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    source_file TEXT NOT NULL,
    line        INTEGER CHECK (line >= 1)     -- NULL for extra files that no label file lists
);
CREATE INDEX dropped_images_dataset ON dropped_images(dataset_id);

-- How the benchmark split was drawn: val_mode 'stratified' takes val_fraction of official train,
-- 'official' uses the dataset's own validation set (val_fraction then NULL).
CREATE TABLE split_recipes (
    id           INTEGER PRIMARY KEY,
    dataset_id   INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    seed         INTEGER NOT NULL,
    val_fraction REAL CHECK (val_fraction > 0 AND val_fraction < 1),
    val_mode     TEXT NOT NULL CHECK (val_mode IN ('stratified', 'official')),
    created      TEXT NOT NULL,
    CHECK ((val_mode = 'stratified') = (val_fraction IS NOT NULL))
);
CREATE INDEX split_recipes_dataset ON split_recipes(dataset_id);

-- The mask pattern bank. stable_id is the name manifests use, stable across regenerations of the bank.
CREATE TABLE patterns (
    id             INTEGER PRIMARY KEY,
    stable_id      TEXT NOT NULL UNIQUE,
    type           TEXT NOT NULL CHECK (type IN ('surgical', 'n95', 'kn95', 'cloth')),
    style          TEXT NOT NULL CHECK (style IN ('full', 'below_nose', 'chin')),
    colour         TEXT NOT NULL CHECK (colour GLOB '#[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
    texture        TEXT NOT NULL CHECK (texture IN ('plain', 'pleats', 'stripes', 'checks', 'dots', 'motif')),
    texture_params TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(texture_params))
);

-- Which pattern an image gets under an assignment mode and seed. Patterns in use cannot be deleted.
CREATE TABLE assignments (
    id         INTEGER PRIMARY KEY,
    image_id   INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    pattern_id INTEGER NOT NULL REFERENCES patterns(id),
    mode       TEXT NOT NULL CHECK (mode IN ('identity', 'pattern', 'none')),
    seed       INTEGER NOT NULL,
    UNIQUE (image_id, mode, seed)
);
CREATE INDEX assignments_pattern ON assignments(pattern_id);

-- Result of masking one image. The box is NULL when decoding failed; score is NULL for a fallback box.
-- landmarks: JSON [[x,y] x 68] in dlib order; visibility: 68 characters, '1' visible, '0' covered.
CREATE TABLE renders (
    id            INTEGER PRIMARY KEY,
    image_id      INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    assignment_id INTEGER REFERENCES assignments(id) ON DELETE CASCADE,
    status        TEXT NOT NULL CHECK (status IN ('ok', 'fallback_box', 'no_face', 'bad_image', 'failed')),
    box_x         INTEGER,
    box_y         INTEGER,
    box_w         INTEGER CHECK (box_w > 0),
    box_h         INTEGER CHECK (box_h > 0),
    score         REAL,
    landmarks     TEXT CHECK (landmarks IS NULL OR json_array_length(landmarks) = 68),
    visibility    TEXT CHECK (visibility IS NULL OR (length(visibility) = 68 AND visibility NOT GLOB '*[^01]*')),
    coverage      REAL CHECK (coverage BETWEEN 0 AND 1),
    output_path   TEXT,
    output_hash   TEXT,
    alpha_path    TEXT,
    alpha_hash    TEXT,
    UNIQUE (image_id, assignment_id)
);
CREATE INDEX renders_assignment ON renders(assignment_id);

-- Every invocation of a ferbench tool. finished and exit_code stay NULL while it runs (or if it crashed).
CREATE TABLE tool_runs (
    id        INTEGER PRIMARY KEY,
    tool      TEXT NOT NULL,
    version   TEXT NOT NULL,
    arguments TEXT NOT NULL,                  -- JSON array of argv
    started   TEXT NOT NULL,
    finished  TEXT,
    exit_code INTEGER CHECK (exit_code >= 0)
);

-- One training run: its config and the epoch whose weights were kept.
CREATE TABLE train_runs (
    id          INTEGER PRIMARY KEY,
    tool_run_id INTEGER REFERENCES tool_runs(id) ON DELETE SET NULL,
    config      TEXT NOT NULL CHECK (json_valid(config)),
    best_epoch  INTEGER CHECK (best_epoch >= 0)
);
CREATE INDEX train_runs_tool_run ON train_runs(tool_run_id);

-- Per-epoch losses (MODEL.md: total = lp + 0.6 lm + 0.4 ld) and validation accuracy.
CREATE TABLE train_epochs (
    id           INTEGER PRIMARY KEY,
    train_run_id INTEGER NOT NULL REFERENCES train_runs(id) ON DELETE CASCADE,
    epoch        INTEGER NOT NULL CHECK (epoch >= 0),
    lp           REAL NOT NULL CHECK (lp >= 0),
    lm           REAL NOT NULL CHECK (lm >= 0),
    ld           REAL NOT NULL CHECK (ld >= 0),
    total        REAL NOT NULL CHECK (total >= 0),
    val_accuracy REAL CHECK (val_accuracy BETWEEN 0 AND 1),
    seconds      REAL NOT NULL CHECK (seconds >= 0),
    UNIQUE (train_run_id, epoch)
);

-- One evaluation of a model on one split of a dataset (trained here or imported predictions).
-- Schema version 2 adds source_path and source_hash (SHA-256): the file imported predictions came from
-- (NULL for runs of the model here, which have weights_path and weights_hash instead); and mask_mode,
-- mask_seed: the assignment (assignments.mode, seed) whose masked images the split was evaluated on.
CREATE TABLE model_runs (
    id               INTEGER PRIMARY KEY,
    tool_run_id      INTEGER REFERENCES tool_runs(id) ON DELETE SET NULL,
    dataset_id       INTEGER REFERENCES datasets(id) ON DELETE CASCADE,
    model            TEXT NOT NULL,
    weights_path     TEXT,
    weights_hash     TEXT,
    split            TEXT NOT NULL CHECK (split IN ('train', 'val', 'test')),
    predictions_path TEXT
);
CREATE INDEX model_runs_dataset ON model_runs(dataset_id, split);
CREATE INDEX model_runs_tool_run ON model_runs(tool_run_id);

-- One prediction per image per model run; probabilities is a JSON array in label order, if known.
CREATE TABLE predictions (
    id            INTEGER PRIMARY KEY,
    model_run_id  INTEGER NOT NULL REFERENCES model_runs(id) ON DELETE CASCADE,
    image_id      INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    pred          INTEGER NOT NULL CHECK (pred BETWEEN 0 AND 7),
    probabilities TEXT CHECK (probabilities IS NULL OR json_type(probabilities) = 'array'),
    UNIQUE (model_run_id, image_id)
);
CREATE INDEX predictions_image ON predictions(image_id);

-- Inference speed of a model run on one device and batch size.
CREATE TABLE timings (
    id            INTEGER PRIMARY KEY,
    model_run_id  INTEGER NOT NULL REFERENCES model_runs(id) ON DELETE CASCADE,
    device        TEXT NOT NULL,
    batch         INTEGER NOT NULL CHECK (batch > 0),
    ms_per_image  REAL NOT NULL CHECK (ms_per_image > 0),
    images_per_s  REAL NOT NULL CHECK (images_per_s > 0),
    peak_bytes    INTEGER CHECK (peak_bytes >= 0)
);
CREATE INDEX timings_model_run ON timings(model_run_id);
