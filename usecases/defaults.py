"""The defaults a user can change, each written once: the CLI's options and the workflow's
option classes read them from here. Importing this module loads nothing heavy."""

from usecases.serving.limits import MAX_REQUEST_BYTES

GATE = 0.7  # minimum test accuracy for a model version to be approved (paper §5: 0.7)
SEED = 42  # seed of the train/test split, the search and the smoke's sample
TRIALS = 4  # ASHA trials; 1 runs the single-training config
SMOKE = 20  # held-out examples sent through the served model; 0 skips deployment
MAX_FILE_BYTES = 1024 * 1024  # raw files larger than this are quarantined
MIN_CHARS = 100  # texts shorter than this are quarantined

__all__ = ["GATE", "MAX_FILE_BYTES", "MAX_REQUEST_BYTES", "MIN_CHARS", "SEED", "SMOKE",
           "TRIALS"]
