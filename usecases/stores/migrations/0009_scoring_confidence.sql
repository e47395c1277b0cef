-- Scoring Data: the served model's probability for the class it answered (its confidence), so
-- that Model Maintenance can send the least certain predictions to labeling first. Rows written
-- before this migration, or by an older server, have none.
ALTER TABLE scoring_data ADD COLUMN confidence double precision;
