-- Labels through Label Studio, incrementally. An export lists only the tasks changed since the
-- previous export of that version and split began listing (listed_at), and a version's tasks,
-- imported in the background for large datasets, are recorded here once all are in a project.
ALTER TABLE label_exports ADD COLUMN listed_at timestamptz;
CREATE TABLE label_imports (
    dataset_version text NOT NULL REFERENCES dataset_versions (id),
    split           text NOT NULL CHECK (split IN ('train', 'test')),
    usecase         text NOT NULL,
    project         integer NOT NULL,
    tasks           integer NOT NULL,
    finished_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset_version, split)
);
CREATE INDEX label_imports_usecase ON label_imports (usecase);
