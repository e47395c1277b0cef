-- Labels: every export that set a dataset version's labels for a split, and where it came from
-- (Label Studio at a URL and project, or the direct path). The newest one is in force.
CREATE TABLE label_exports (
    id              bigserial PRIMARY KEY,
    dataset_version text NOT NULL REFERENCES dataset_versions (id),
    split           text NOT NULL CHECK (split IN ('train', 'test')),
    tool            text NOT NULL,
    url             text,
    project         integer,
    tasks           integer NOT NULL,
    annotations     integer NOT NULL,
    exported        integer NOT NULL,
    by_people       integer NOT NULL,
    exported_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX label_exports_version ON label_exports (dataset_version, split, exported_at);
