-- ML Data: one row per content-addressed dataset version; files in CDL_HOME/mldata.
CREATE TABLE dataset_versions (
    id            text PRIMARY KEY,
    usecase       text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    source        text NOT NULL,
    counts        jsonb NOT NULL,
    manifest_path text NOT NULL
);

-- Invalid inputs are kept with their reason, never dropped.
CREATE TABLE quarantine (
    dataset_version text NOT NULL REFERENCES dataset_versions (id),
    path            text NOT NULL,
    sha256          text NOT NULL,
    reason          text NOT NULL,
    PRIMARY KEY (dataset_version, path)
);

-- Labels (paper: exported from Label Studio, stored per split with lineage).
CREATE TABLE train_labels (
    id              bigserial PRIMARY KEY,
    usecase         text NOT NULL,
    dataset_version text NOT NULL REFERENCES dataset_versions (id),
    item_id         text NOT NULL,
    file_path       text NOT NULL,
    label           text NOT NULL,
    creator         text NOT NULL,
    created_at      timestamptz NOT NULL,
    UNIQUE (dataset_version, item_id)
);
CREATE TABLE test_labels (LIKE train_labels INCLUDING ALL);

-- Experiment Registry (local side of Determined): searches and their trials.
CREATE TABLE experiments (
    id              bigserial PRIMARY KEY,
    usecase         text NOT NULL,
    dataset_version text NOT NULL REFERENCES dataset_versions (id),
    config          jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE trials (
    experiment_id   bigint NOT NULL REFERENCES experiments (id),
    number          integer NOT NULL,
    hparams         jsonb NOT NULL,
    state           text NOT NULL,
    epochs          integer NOT NULL,
    val_metrics     jsonb NOT NULL,
    checkpoint      text,
    PRIMARY KEY (experiment_id, number)
);

-- Model Registry: versions of a named model with their lineage and evaluation.
CREATE TABLE model_versions (
    name            text NOT NULL,
    version         integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    usecase         text NOT NULL,
    dataset_version text NOT NULL REFERENCES dataset_versions (id),
    experiment_id   bigint REFERENCES experiments (id),
    hparams         jsonb NOT NULL,
    val_metrics     jsonb NOT NULL,
    code_version    text NOT NULL,
    artifact_path   text NOT NULL,
    test_accuracy   double precision,
    gate_threshold  double precision,
    gate_passed     boolean,
    PRIMARY KEY (name, version)
);
