"""The embedded Label Studio server: loopback only, generated credentials, clean stop."""

from __future__ import annotations

import json
import re
import stat
import subprocess

import httpx
import pytest

from usecases.errors import CDLError
from usecases.stores.labelstudio import (
    EmbeddedLabelStudio,
    LabelStudioClient,
    Studio,
    healthy,
    open_label_studio,
)

from ...conftest import free_port

# Every test here boots a real Label Studio
pytestmark = pytest.mark.slow


def test_credentials_are_generated_and_owner_only(label_studio_server: EmbeddedLabelStudio,
                                                  label_studio: Studio) -> None:
    path = label_studio_server.credentials_file
    assert label_studio.credentials == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    login = json.loads(path.read_text())
    assert len(login["password"]) >= 24 and len(login["token"]) == 40
    assert login["token"] == label_studio.token
    # the token works; the password is not written into the log
    assert LabelStudioClient(label_studio).users()
    assert login["password"] not in label_studio_server.log_file.read_text(errors="replace")


def test_listens_on_loopback_only(label_studio: Studio) -> None:
    port = label_studio.url.rsplit(":", 1)[1]
    listeners = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                               text=True, check=True).stdout.split()
    local = [word for word in listeners if word.endswith(f":{port}")]
    assert local and all(address == f"127.0.0.1:{port}" for address in local), listeners


def test_nobody_can_sign_up_without_an_invitation(label_studio: Studio) -> None:
    with httpx.Client(base_url=label_studio.url) as browser:
        form = browser.get("/user/signup/")
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert form.status_code == 200 and csrf, form.text[:300]
        refused = browser.post("/user/signup/", headers={"Referer": f"{label_studio.url}/"},
                               data={"csrfmiddlewaretoken": csrf.group(1),
                                     "email": "stranger@example.com", "password": "x" * 24})
    # refused by the signup rule itself, not by a missing CSRF token
    assert refused.status_code == 403 and "CSRF" not in refused.text
    assert "stranger@example.com" not in LabelStudioClient(label_studio).users().values()


def test_running_server_is_reused_and_left_running(label_studio_server: EmbeddedLabelStudio,
                                                   label_studio: Studio) -> None:
    with open_label_studio(label_studio_server.state, label_studio_server.conninfo,
                           label_studio_server.port) as studio:
        assert studio.url == label_studio.url
    assert healthy(label_studio.url)


def test_a_taken_port_is_a_clear_error(label_studio_server: EmbeddedLabelStudio,
                                       label_studio: Studio, tmp_path: object) -> None:
    from usecases.state import State

    other = EmbeddedLabelStudio(State.from_env(str(tmp_path)), label_studio_server.conninfo,
                                label_studio_server.port)
    with pytest.raises(CDLError, match="port .* is in use") as raised:
        other.start()
    assert "--label-studio-port" in raised.value.fix


def test_external_server_needs_a_token(monkeypatch: pytest.MonkeyPatch,
                                       label_studio_server: EmbeddedLabelStudio) -> None:
    monkeypatch.setenv("CDL_LABEL_STUDIO_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("CDL_LABEL_STUDIO_TOKEN", raising=False)
    with pytest.raises(CDLError, match="CDL_LABEL_STUDIO_TOKEN"), open_label_studio(
            label_studio_server.state, label_studio_server.conninfo):
        pass
