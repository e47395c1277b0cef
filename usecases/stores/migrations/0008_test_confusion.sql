-- Model Registry: the confusion matrix of a version's evaluation on the held-out test set,
-- beside its accuracy ({"classes": [...], "matrix": [[true class row, predicted column]]}).
ALTER TABLE model_versions ADD COLUMN test_confusion jsonb;
