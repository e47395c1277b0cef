-- Experiment Registry: every trial's validation metrics after each epoch (Determined keeps
-- them per trial on a cluster), not only the last.
CREATE TABLE trial_metrics (
    experiment_id   bigint NOT NULL,
    number          integer NOT NULL,
    epoch           integer NOT NULL,
    metrics         jsonb NOT NULL,
    PRIMARY KEY (experiment_id, number, epoch),
    FOREIGN KEY (experiment_id, number) REFERENCES trials (experiment_id, number)
        ON DELETE CASCADE
);
