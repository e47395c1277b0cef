"""The Pachyderm 2.11 pipeline specs of the data pipeline: per use case, the clean/validate
step (``usecases.cluster.worker``) over the use case's raw input repo.

Specs are CreatePipelineRequest JSON, camelCase only, as Pachyderm's own schema
(``src/internal/jsonschema/pps_v2/CreatePipelineRequest.schema.json``) demands; the tests check
each against it. The worker's image is not written here: the caller passes the image the
platform pins (``stacks/platform/pins.py``, exported by the stack), as the experiment configs
get theirs.
"""

from __future__ import annotations

from typing import Any

RAW_INPUT = "raw"  # the input's name: the worker reads /pfs/raw, Pachyderm sets raw_COMMIT


def raw_repo(usecase: str) -> str:
    """The use case's input repo (ML Data): one commit per collected version of its files."""
    return f"{usecase}-raw"


def validate_pipeline_name(usecase: str) -> str:
    """The validation pipeline, and so its output repo: the validated versions."""
    return f"{usecase}-validate"


def features_repo(usecase: str) -> str:
    """The Transformation Registry: the features computed from a validated version."""
    return f"{usecase}-features"


def validate_pipeline(usecase: str, image: str, project: str = "default") -> dict[str, Any]:
    """The clean/validate pipeline of ``usecase`` (bbc, fmnist), its worker in ``image``."""
    return {
        "pipeline": {"project": {"name": project}, "name": validate_pipeline_name(usecase)},
        "description": f"CDL: validate and version {usecase}'s raw data; invalid files "
                       "quarantined with their reasons (quarantine.json)",
        "transform": {
            "image": image,
            "cmd": ["python", "-m", "usecases.cluster.worker", "--usecase", usecase,
                    "--input", f"/pfs/{RAW_INPUT}", "--out", "/pfs/out"],
        },
        # One datum, the whole commit: the train/test split is drawn over all the files.
        "input": {"pfs": {"project": project, "name": RAW_INPUT, "repo": raw_repo(usecase),
                          "branch": "master", "glob": "/"}},
        "parallelismSpec": {"constant": 1},
        "resourceRequests": {"cpu": 1, "memory": "2Gi"},
        # A failed validation is a verdict on the data, not a flaky worker: no retry.
        "datumTries": 1,
    }
