"""Model Maintenance's retraining on a cluster: the decision to train a challenger starts the
project's GitLab pipeline through GitLab's pipeline trigger API (python-gitlab), where the
local path trains in this process.

The pipeline is told what to do by variables only (``CDL_MAINTAIN_*``): the use case, the
dataset version the labeled feedback built, the serving champion's version and the promotion
tolerance. Its maintenance job runs ``cdl maintain --challenge`` with them on the cluster's
stores. The trigger token is a secret: it is read from the environment, sent only in the
request's body, and never printed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from usecases.errors import CDLError

URL, PROJECT, TOKEN = "CDL_GITLAB_URL", "CDL_GITLAB_PROJECT", "CDL_GITLAB_TRIGGER_TOKEN"


@dataclass(frozen=True)
class Triggered:
    """The pipeline GitLab created for the trigger."""

    id: int
    web_url: str
    status: str
    ref: str
    variables: dict[str, str]


def challenge_variables(usecase: str, dataset: str, champion: int,
                        tolerance: float) -> dict[str, str]:
    return {"CDL_MAINTAIN": "challenge", "CDL_MAINTAIN_USECASE": usecase,
            "CDL_MAINTAIN_DATASET": dataset, "CDL_MAINTAIN_CHAMPION": str(champion),
            "CDL_MAINTAIN_TOLERANCE": f"{tolerance:g}"}


def settings(env: dict[str, str] | None = None) -> tuple[str, str, str]:
    """GitLab's URL, the project (numeric id or path) and the trigger token, from the
    environment; a missing one is an error naming it."""
    env = dict(os.environ) if env is None else env
    missing = [name for name in (URL, PROJECT, TOKEN) if not env.get(name)]
    if missing:
        raise CDLError(f"{', '.join(missing)} not set: the GitLab trigger needs {URL}, "
                       f"{PROJECT} and {TOKEN}",
                       "export them (the token from the project's Settings > CI/CD > Pipeline "
                       "trigger tokens), or drop --via gitlab to train here")
    return env[URL].rstrip("/"), env[PROJECT], env[TOKEN]


def trigger(url: str, project: str, token: str, ref: str, variables: dict[str, str],
            timeout: float = 30.0) -> Triggered:
    """POST /projects/:id/trigger/pipeline; the pipeline GitLab answers with."""
    import gitlab
    import requests

    client = gitlab.Gitlab(url, timeout=timeout)
    try:
        pipeline: Any = client.projects.get(project, lazy=True).trigger_pipeline(
            ref, token, variables=variables)
    except gitlab.GitlabCreateError as error:
        raise _refused(url, project, ref, error) from None
    except requests.RequestException as error:
        raise CDLError(f"GitLab at {url} did not answer: {type(error).__name__}",
                       f"check {URL} and that this machine reaches it") from None
    return Triggered(int(pipeline.id), str(pipeline.web_url), str(pipeline.status),
                     str(pipeline.ref), variables)


def _refused(url: str, project: str, ref: str, error: Any) -> CDLError:
    code, message = error.response_code, error.error_message
    if isinstance(message, dict):  # a 400's {"base": ["Reference not found"]}
        message = "; ".join(str(v[0] if isinstance(v, list) and v else v)
                            for v in message.values())
    message = str(message).removeprefix(f"{code} ")  # 404's own "404 Not Found"
    if code in (401, 403, 404):
        # GitLab answers 404 both for an unknown project and for a token that is not its own
        return CDLError(f"GitLab at {url} refused the trigger for project {project}: "
                        f"{code} {message}",
                        f"check {PROJECT}, and that {TOKEN} is a pipeline trigger token of that "
                        "project")
    return CDLError(f"GitLab at {url} could not start a pipeline on {ref!r} of {project}: "
                    f"{code} {message}",
                    "pass --ref with a branch or tag of the project that has a .gitlab-ci.yml")
