-- Model Maintenance's decision on a challenger (paper §3.4): promoted or not, why, and the numbers
-- it rests on (the serving champion's and the challenger's accuracy on the held-out test set and
-- on the newly labeled served inputs), recorded on the challenger's version.
ALTER TABLE model_versions ADD COLUMN decision jsonb;
