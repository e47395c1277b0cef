"""What both Seldon wrapper classes share: reading a CDL model folder (CDL_MODEL_FOLDER)."""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path
from typing import Any


class ModelFolder:
    def __init__(self) -> None:
        # Only cheap work here: Seldon builds this object in the parent process before gunicorn
        # forks its workers, and TensorFlow's thread pools do not survive a fork; the model is
        # loaded in load(), which each worker calls after fork.
        folder = Path(os.environ["CDL_MODEL_FOLDER"]).resolve()
        sys.path.insert(0, str(folder))  # the folder's own cdl_serving package
        self.artifacts = folder / "artifacts"
        self.meta: dict[str, Any] = json.loads((self.artifacts / "model.json").read_text())

    def load(self) -> None:
        """Seldon calls this in each worker; it loads the model, then freezes the objects the
        frameworks made, as MLServer's runtime (cdl_serving.runtime) does."""
        self.load_model()
        gc.collect()
        gc.freeze()

    def load_model(self) -> None:
        raise NotImplementedError

    def class_names(self) -> list[str]:
        return list(self.meta["classes"])
