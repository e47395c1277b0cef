"""GitLab Runner (Kubernetes executor), registered to the GitLab host.

The runner's authentication token is created through GitLab's runners API (python-gitlab) at
`pulumi up` and deleted at `pulumi destroy`; it exists only in the Pulumi state (as a secret)
and in a Kubernetes Secret the chart reads. The repository holds no token.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi.dynamic

from stacks.platform import pins
from stacks.platform.common import resources
from stacks.platform.wiring import Namespace

RUNNER_SECRET = "gitlab-runner-token"
RUNNER_TAGS = ("cdl", "kubernetes")
JOB_IMAGE = pins.SMOKE_PYTHON


def runner_config() -> str:
    """The executor's config.toml fragment: jobs run as pods in the CI namespace, sized."""
    return "\n".join([
        "[[runners]]",
        "  [runners.kubernetes]",
        f'    namespace = "{Namespace.CI}"',
        f'    image = "{JOB_IMAGE.ref}"',
        '    cpu_request = "500m"',
        '    cpu_limit = "2"',
        '    memory_request = "1Gi"',
        '    memory_limit = "4Gi"',
        '    helper_cpu_request = "50m"',
        '    helper_memory_request = "64Mi"',
        "",
    ])


def gitlab_runner_values(gitlab_url: str) -> dict[str, Any]:
    # The chart takes the image's registry and path apart.
    registry, _, image = pins.GITLAB_RUNNER_APP.repository.partition("/")
    return {
        "image": {"registry": registry, "image": image, "tag": pins.GITLAB_RUNNER_APP.tag},
        "gitlabUrl": gitlab_url,
        "concurrent": 4,
        "rbac": {"create": True},
        "resources": resources("50m", "128Mi", memory_limit="256Mi"),
        "runners": {"secret": RUNNER_SECRET, "config": runner_config()},
    }


class _RunnerTokenProvider(pulumi.dynamic.ResourceProvider):
    """Creates an instance runner through GitLab's API (POST /user/runners) and keeps its
    authentication token; deleting the resource unregisters the runner."""

    @staticmethod
    def _client(props: dict[str, Any]) -> Any:
        import gitlab  # imported where the provider runs: the engine serializes this class

        return gitlab.Gitlab(props["url"], private_token=props["admin_token"])

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        runner = self._client(props).user.runners.create({
            "runner_type": "instance_type",
            "description": props["description"],
            "tag_list": list(props["tags"]),
            "run_untagged": False,
        })
        return pulumi.dynamic.CreateResult(
            id_=str(runner.id), outs={**props, "token": runner.token})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]
             ) -> pulumi.dynamic.DiffResult:
        changed = [key for key in ("url", "description", "tags") if olds.get(key) != news.get(key)]
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=changed,
                                         delete_before_replace=True)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        self._client(props).runners.delete(int(_id))


class RunnerToken(pulumi.dynamic.Resource):
    """A GitLab runner registration; ``token`` is its authentication token (secret)."""

    token: pulumi.Output[str]

    def __init__(self, name: str, url: pulumi.Input[str], admin_token: pulumi.Input[str],
                 description: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            _RunnerTokenProvider(), name,
            {"url": url, "admin_token": pulumi.Output.secret(admin_token),
             "description": description, "tags": list(RUNNER_TAGS), "token": None},
            pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=["token", "admin_token"])),
        )
