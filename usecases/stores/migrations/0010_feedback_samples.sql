-- Model Maintenance's feedback to labeling (paper §3.4): served inputs sent to Label Studio, the
-- least confident first, each with its Scoring Data row as source and its content hash; once
-- labeled, the label, who set it and when, and the dataset version the sample joined. No foreign
-- key to scoring_data: a retention policy may prune Scoring Data, the lineage stays.
CREATE TABLE feedback_samples (
    scoring_id      bigint PRIMARY KEY,
    usecase         text NOT NULL,
    model           text NOT NULL,
    model_version   text NOT NULL,
    sha256          text NOT NULL,    -- the input's bytes, stored once in ML Data
    prediction      text NOT NULL,
    confidence      double precision,
    served_at       timestamptz NOT NULL,
    project         integer NOT NULL, -- the Label Studio project of the task
    sent_at         timestamptz NOT NULL,
    label           text,
    labeler         text,
    labeled_at      timestamptz,
    dataset_version text REFERENCES dataset_versions (id) ON DELETE SET NULL
);
-- one task per input: the same text served twice is one sample
CREATE UNIQUE INDEX feedback_samples_content ON feedback_samples (usecase, sha256);
