"""``cdl report``: one self-contained HTML page per run (no outside requests, figures embedded),
from the run's report and the persistence stores: data, training curves, the test set's
confusion matrix, compression, the smoke, Scoring Data and lineage."""
