-- Scoring Data (the paper named it, never built it): one row per served prediction.
CREATE TABLE scoring_data (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL,
    model         text NOT NULL,
    model_version text NOT NULL,
    request_id    text,
    input_sha256  text NOT NULL,
    input_text    text,   -- BBC: the article as sent
    input_pixels  bytea,  -- Fashion-MNIST: the 28x28 uint8 image (784 bytes, its own thumbnail)
    prediction    text NOT NULL,
    latency_ms    double precision NOT NULL
);
CREATE INDEX scoring_data_model_at ON scoring_data (model, at);
