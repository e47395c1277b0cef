-- Model Registry: what a version was trained from (dataset version, features, experiment
-- config, search budget and seed, code), as one digest, so that a run with the same inputs
-- reuses the version instead of training it again.
ALTER TABLE model_versions ADD COLUMN training_key text;
CREATE INDEX model_versions_training_key ON model_versions (name, training_key);
