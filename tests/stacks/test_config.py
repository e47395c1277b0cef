"""Config validation: a wrong value stops the program with a message naming the key."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from stacks.config import KEYS, ConfigError, StackConfig, load_config, validate
from stacks.platform import config as platform
from tests.conftest import REPO
from tests.stacks.conftest import VALID, pulumi_config


def _error(values: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        validate(values)
    return str(caught.value)


def test_valid_config_gets_defaults() -> None:
    config = validate(VALID)
    assert (config.gpu_node_count, config.gitlab, config.boot_volume_gb,
            config.data_volume_gb, config.ssh_user) == (1, True, 100, 0, "debian")
    assert config.cloud().gpu_flavor == "g1.t4"


def test_values_arrive_as_strings_from_pulumi() -> None:
    config = validate({**VALID, "gpuNodeCount": "3", "gitlab": "false"})
    assert (config.gpu_node_count, config.gitlab) == (3, False)


@pytest.mark.parametrize(("values", "key", "expected"), [
    ({"adminCidrs": ["0.0.0.0/0"]}, "cdl:adminCidrs", "cdl:allowWorldAdmin"),
    ({"adminCidrs": ["::/0"]}, "cdl:adminCidrs", "whole internet"),
    ({"adminCidrs": ["10.0.0.300/24"]}, "cdl:adminCidrs", "CIDR notation"),
    ({"adminCidrs": ["10.0.0.1/24"]}, "cdl:adminCidrs", "host bits"),
    ({"adminCidrs": []}, "cdl:adminCidrs", "list the networks"),
    ({"adminCidrs": "203.0.113.0/24"}, "cdl:adminCidrs", "list"),
    ({"ingressCidrs": ["nowhere"]}, "cdl:ingressCidrs", "CIDR notation"),
    ({"gpuNodeCount": 0}, "cdl:gpuNodeCount", "greater than or equal to 1"),
    ({"gpuNodeCount": -2}, "cdl:gpuNodeCount", "greater than or equal to 1"),
    ({"sshPublicKey": None}, "cdl:sshPublicKey", "required"),
    ({"sshPublicKey": "~/.ssh/id_ed25519.pub"}, "cdl:sshPublicKey", "public key line"),
    ({"sshPublicKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn"}, "cdl:sshPublicKey",
     "private key"),
    ({"gpuFlavor": None}, "cdl:gpuFlavor", "required"),
    ({"gitlabFlavor": None}, "cdl:gitlabFlavor", "required"),
    ({"bootVolumeGb": 5}, "cdl:bootVolumeGb", "greater than or equal to 10"),
    ({"dataVolumeGb": 100000}, "cdl:dataVolumeGb", "less than or equal to 4096"),
    ({"subnetCidr": "fd00::/64"}, "cdl:subnetCidr", "IPv4"),
    ({"subnetCidr": "10.20.0.0/25"}, "cdl:subnetCidr", "/24 or larger"),
])
def test_errors_name_the_key(values: dict[str, Any], key: str, expected: str) -> None:
    config = {k: v for k, v in {**VALID, **values}.items() if v is not None}
    message = _error(config)
    assert f"{key}:" in message
    assert expected in message


def test_gitlab_flavor_not_needed_without_gitlab() -> None:
    config = {k: v for k, v in VALID.items() if k != "gitlabFlavor"}
    assert validate({**config, "gitlab": False}).cloud().gitlab_flavor is None


def test_every_missing_key_is_named_at_once() -> None:
    message = _error({"adminCidrs": ["203.0.113.0/24"]})
    for key in ("sshPublicKey", "externalNetwork", "image", "gpuFlavor", "gitlabFlavor"):
        assert f"cdl:{key}:" in message


@pytest.mark.parametrize(("hosts", "expected"), [
    ([{"address": "192.0.2.1", "role": "gitlab"}], "role 'gpu'"),
    ([{"address": "192.0.2.1", "role": "gpu"}, {"address": "192.0.2.2", "role": "gitlab"},
      {"address": "192.0.2.3", "role": "gitlab"}], "at most one"),
    ([{"address": "192.0.2.1", "role": "gpu", "name": "a"},
      {"address": "192.0.2.2", "role": "gpu", "name": "a"}], "unique"),
])
def test_existing_hosts_errors(hosts: list[dict[str, str]], expected: str) -> None:
    message = _error({"hosts": hosts})
    assert "cdl:hosts:" in message
    assert expected in message


def test_host_role_error_names_the_entry() -> None:
    message = _error({"hosts": [{"address": "192.0.2.1", "role": "cpu"}]})
    assert "cdl:hosts.0.role:" in message


def test_existing_hosts_need_no_cloud_settings() -> None:
    config = validate({"hosts": [{"address": "192.0.2.1", "role": "gpu"}]})
    assert isinstance(config, StackConfig)
    with pytest.raises(ConfigError, match="cdl:hosts"):
        config.cloud()


EXAMPLE = REPO / "Pulumi.example.yaml"


def _example_values() -> dict[str, Any]:
    document = yaml.safe_load(EXAMPLE.read_text())
    return {key.removeprefix("cdl:"): value for key, value in document["config"].items()
            if key.startswith("cdl:")}


def test_example_stack_file_is_valid() -> None:
    values = _example_values()
    config = validate(values)
    assert (config.gpu_node_count, config.gitlab, config.data_volume_gb) == (1, True, 200)
    # The platform's keys validate too, so the example deploys the tool stack.
    settings = platform.PlatformConfig.model_validate(
        {key: value for key, value in values.items() if key in platform.KEYS})
    assert (settings.domain, settings.serving, settings.object_store) == (
        "cdl.example.org", "seldon", "minio")
    # Every key is one the program reads (load_config stops on any other).
    assert set(values) <= KEYS | set(platform.KEYS)


def test_example_stack_file_documents_every_platform_key() -> None:
    text = EXAMPLE.read_text()
    for key in platform.KEYS:
        assert f"cdl:{key}:" in text, key
    # Secrets appear only as the command that sets them, never as a plain value.
    values = _example_values()
    for key in platform.SECRET_KEYS:
        assert f"pulumi config set --secret cdl:{key} " in text, key
        assert key not in values, key


def test_a_misspelt_key_stops_the_program(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_CONFIG", pulumi_config({**VALID, "gpuNodeCuont": 3}))
    with pytest.raises(ConfigError, match="cdl:gpuNodeCuont: unknown key"):
        load_config()


def test_keys_of_other_components_are_theirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_CONFIG", pulumi_config({**VALID, "gpuNodeCount": 2,
                                                       "domain": "cdl.example.org"}))
    assert load_config(other_keys=["domain"]).gpu_node_count == 2
    assert validate({**VALID, "domain": "cdl.example.org"}).gpu_flavor == "g1.t4"
