"""Contract tests: openstacksdk against OpenStack responses shaped after the OpenStack API
reference (api_reference.py), served over HTTP on 127.0.0.1 (conftest.py). No live cloud and
nothing recorded from one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from stacks.config import validate
from tests.stacks.conftest import VALID
from tests.usecases.cloud import api_reference
from tests.usecases.cloud.conftest import ReferenceCloud
from usecases.cloud.preflight import Check, preflight, read_stack
from usecases.errors import CDLError

pytestmark = [
    # openstacksdk warns about its own internals (deprecated fields of the limits document).
    pytest.mark.filterwarnings("ignore::openstack.warnings.OpenStackDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"),
]


def _run(cloud: ReferenceCloud, **config: Any) -> dict[str, Check]:
    checks = preflight(cloud.connect(), validate({**VALID, **config}))
    return {check.name: check for check in checks}


def _failed(checks: dict[str, Check]) -> dict[str, str]:
    return {name: check.detail for name, check in checks.items() if not check.ok}


def test_contract_all_checks_pass(cloud: ReferenceCloud) -> None:
    checks = _run(cloud)
    assert list(checks) == [
        "authentication", "external network", "image", "GPU flavor", "GitLab flavor",
        "quota instances", "quota cores", "quota RAM", "quota volumes", "quota gigabytes",
        "quota floating IPs"]
    assert _failed(checks) == {}
    assert checks["GPU flavor"].detail == ("g1.t4: 32 vCPU, 131072 MB RAM, "
                                           "pci_passthrough:alias=t4:1")
    assert checks["quota cores"].detail == "need 34, 98 free (2 of 100 used)"
    assert checks["quota gigabytes"].detail == "need 150 GB, 950 GB free (50 of 1000 used)"


def test_contract_wrong_password_stops_at_authentication(cloud: ReferenceCloud) -> None:
    checks = preflight(cloud.connect(password="wrong"), validate(VALID))
    assert [(c.name, c.ok) for c in checks] == [("authentication", False)]
    assert "401" in checks[0].detail or "authentication" in checks[0].detail.lower()


def test_contract_missing_external_network(cloud: ReferenceCloud) -> None:
    failed = _failed(_run(cloud, externalNetwork="ext-net"))
    assert failed == {"external network": "'ext-net' not found (cdl:externalNetwork)"}


def test_contract_network_that_is_not_external(cloud: ReferenceCloud) -> None:
    failed = _failed(_run(cloud, externalNetwork="internal"))
    assert failed == {"external network":
                      "'internal' is not external (router:external is false)"}


def test_contract_missing_image(cloud: ReferenceCloud) -> None:
    assert _failed(_run(cloud, image="Debian 12")) == {
        "image": "'Debian 12' not found (cdl:image)"}


def test_contract_image_not_active(cloud: ReferenceCloud) -> None:
    cloud.images = [api_reference.image("Ubuntu 22.04", api_reference.IMAGE_ID, status="queued")]
    assert _failed(_run(cloud)) == {"image": "'Ubuntu 22.04' is queued, not active"}


def test_contract_missing_gpu_flavor(cloud: ReferenceCloud) -> None:
    failed = _failed(_run(cloud, gpuFlavor="g9.h100"))
    assert failed["GPU flavor"] == "'g9.h100' not found (cdl:gpuFlavor)"
    assert failed["quotas"] == "skipped: a flavor is missing"


def test_contract_flavor_without_gpu(cloud: ReferenceCloud) -> None:
    failed = _failed(_run(cloud, gpuFlavor="m1.xlarge"))
    assert list(failed) == ["GPU flavor"]
    assert failed["GPU flavor"].startswith("'m1.xlarge' has no GPU")


@pytest.mark.parametrize("spec", [{"resources:VGPU": "1"}, {"resources:PGPU": "1"}])
def test_contract_vgpu_and_pgpu_flavors_count_as_gpu(cloud: ReferenceCloud,
                                                     spec: dict[str, str]) -> None:
    cloud.extra_specs[api_reference.GPU_FLAVOR_ID] = spec
    assert _failed(_run(cloud)) == {}


def test_contract_zero_vgpu_is_no_gpu(cloud: ReferenceCloud) -> None:
    cloud.extra_specs[api_reference.GPU_FLAVOR_ID] = {"resources:VGPU": "0"}
    assert list(_failed(_run(cloud))) == ["GPU flavor"]


def test_contract_quota_short(cloud: ReferenceCloud) -> None:
    cloud.compute_limits = api_reference.compute_limits(instances=(10, 9), cores=(64, 40),
                                                   ram=(-1, 0))
    cloud.volume_limits = api_reference.volume_limits(volumes=(10, 0), gigabytes=(500, 0))
    cloud.network_quota = api_reference.network_quota_details((2, 1, 1))
    failed = _failed(_run(cloud, gpuNodeCount=3, dataVolumeGb=200))
    assert failed == {
        "quota instances": "need 4, 1 free (9 of 10 used)",
        "quota cores": "need 98, 24 free (40 of 64 used)",
        "quota gigabytes": "need 950 GB, 500 GB free (0 of 500 used)",
        "quota floating IPs": "need 2, 0 free (2 of 2 used)",
    }
    assert _run(cloud)["quota RAM"].detail.endswith("unlimited")


def test_contract_without_gitlab_needs_no_gitlab_flavor(cloud: ReferenceCloud) -> None:
    checks = _run(cloud, gitlab=False, gitlabFlavor="does-not-exist")
    assert "GitLab flavor" not in checks
    assert checks["quota instances"].detail.startswith("need 1,")


def _stack_file(folder: Path, name: str, values: dict[str, Any]) -> Path:
    path = folder / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": {
        "openstack:region": "RegionOne", **{f"cdl:{k}": v for k, v in values.items()}}}))
    return path


def test_stack_file_is_validated_like_the_program(tmp_path: Path) -> None:
    assert read_stack(_stack_file(tmp_path, "dev", VALID)).gpu_flavor == "g1.t4"
    with pytest.raises(CDLError, match="cdl:adminCidrs"):
        read_stack(_stack_file(tmp_path, "bad", {**VALID, "adminCidrs": ["0.0.0.0/0"]}))
    with pytest.raises(CDLError, match="existing-hosts"):
        read_stack(_stack_file(tmp_path, "own", {"hosts": [{"address": "192.0.2.1",
                                                            "role": "gpu"}]}))
    with pytest.raises(CDLError, match="pulumi stack init"):
        read_stack(tmp_path / "Pulumi.none.yaml")


def _cli(cloud: ReferenceCloud, folder: Path, monkeypatch: pytest.MonkeyPatch,
         *args: str) -> tuple[int, str]:
    from usecases.cli import app

    monkeypatch.chdir(folder)
    for name, value in cloud.env().items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["preflight", *args])
    return result.exit_code, result.output


def test_contract_cli_prints_a_table_and_succeeds(cloud: ReferenceCloud, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _stack_file(tmp_path, "dev", VALID)
    code, output = _cli(cloud, tmp_path, monkeypatch, "--stack", "dev")
    assert code == 0, output
    assert "quota floating IPs" in output and "FAIL" not in output


def test_contract_cli_exits_nonzero_on_a_failed_check(cloud: ReferenceCloud, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _stack_file(tmp_path, "dev", {**VALID, "gpuFlavor": "m1.xlarge"})
    code, output = _cli(cloud, tmp_path, monkeypatch, "--stack", "dev")
    assert code == 1
    assert "FAIL" in output and "has no GPU" in output


def test_cli_config_error_is_one_line(cloud: ReferenceCloud, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _stack_file(tmp_path, "dev", {**VALID, "gpuNodeCount": 0})
    code, output = _cli(cloud, tmp_path, monkeypatch, "--stack", "dev")
    assert code == 1
    assert "cdl:gpuNodeCount" in output
    assert cloud.requests == []


def test_cli_reads_the_stack_file_before_asking_the_cloud(cloud: ReferenceCloud, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    code, output = _cli(cloud, tmp_path, monkeypatch, "--stack", "missing")
    assert code == 1
    assert "no stack file Pulumi.missing.yaml" in output
    assert cloud.requests == []


def test_cli_without_credentials_says_how_to_give_them(cloud: ReferenceCloud, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _stack_file(tmp_path, "dev", VALID)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "no-clouds.yaml"))
    monkeypatch.chdir(tmp_path)
    from usecases.cli import app

    result = CliRunner().invoke(app, ["preflight", "--stack", "dev"])
    assert result.exit_code == 1
    assert "no OpenStack credentials" in result.output


def test_contract_newest_of_several_images_with_the_name(cloud: ReferenceCloud) -> None:
    old = {**api_reference.image("Ubuntu 22.04", "0ld1mage-0000-0000-0000-000000000000"),
           "created_at": "2024-01-01T00:00:00Z"}
    cloud.images = [old, api_reference.image("Ubuntu 22.04", api_reference.IMAGE_ID)]
    assert _run(cloud)["image"].detail == f"Ubuntu 22.04 ({api_reference.IMAGE_ID})"
