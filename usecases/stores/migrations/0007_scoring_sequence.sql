-- Scoring Data written once and checked for gaps: each serving process numbers the rows of each
-- model it serves (server_id, seq). A replayed or retried row conflicts and is skipped; a missing
-- number is a lost row. Rows written before this migration have neither.
ALTER TABLE scoring_data ADD COLUMN server_id text, ADD COLUMN seq bigint;
CREATE UNIQUE INDEX scoring_data_server_seq ON scoring_data (server_id, seq);
