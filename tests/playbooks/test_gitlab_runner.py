"""The GitLab role's runner creation (roles/gitlab/files/create-runner.rb), as far as it runs
without a GitLab: Ruby parses it, and it runs against stand-ins of the GitLab classes it calls.

The stand-ins (below) have the shapes of GitLab's own code, read from its source, not
recorded from a GitLab: ``Ci::Runners::CreateRunnerService.new(user:, params:).execute``
returns a ``ServiceResponse`` (``success?``, ``message``, ``payload[:runner]``), and
``Ci::Runner.instance_type.find_by(description:)`` finds an instance runner. This is a
contract test of the script's own logic: create once, then find it; the token only in a
0600 file, never on stdout."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from ..conftest import REPO

SCRIPT = REPO / "playbooks" / "roles" / "gitlab" / "files" / "create-runner.rb"

STAND_INS = r'''
require "json"
STORE = ENV.fetch("STAND_IN_STORE")
class ServiceResponse
  attr_reader :message, :payload
  def initialize(success, message, payload)
    @success, @message, @payload = success, message, payload
  end
  def success? = @success
end
class StandInRunner
  attr_reader :token, :description
  def initialize(description, token) = (@description, @token = description, token)
end
module Ci
  class Runner
    def self.instance_type = self
    def self.find_by(description:)
      found = File.exist?(STORE) ? JSON.parse(File.read(STORE)) : {}
      found.key?(description) ? StandInRunner.new(description, found[description]) : nil
    end
  end
  module Runners
    class CreateRunnerService
      def initialize(user:, params:) = (@user, @params = user, params)
      def execute
        raise "not an instance runner" unless @params[:runner_type] == "instance_type"
        token = "glrt-" + Random.new.bytes(10).unpack1("H*")
        File.write(STORE, JSON.dump({@params[:description] => token}))
        ServiceResponse.new(true, nil, { runner: StandInRunner.new(@params[:description], token) })
      end
    end
  end
end
class User
  def self.admins = self
  def self.active = self
  def self.order(*) = self
  def self.first = ENV["STAND_IN_NO_ADMIN"] ? nil : :root
end
'''


@pytest.fixture(scope="module")
def ruby() -> str:
    found = shutil.which("ruby")
    if found is None:
        pytest.fail("ruby is needed for the runner script's checks (apt-get install ruby; "
                    "scripts/setup.sh test installs it)")
    return found


def test_the_runner_script_parses(ruby: str) -> None:
    check = subprocess.run([ruby, "-c", str(SCRIPT)], capture_output=True, text=True,
                           timeout=60, check=False)
    assert check.returncode == 0 and "Syntax OK" in check.stdout, check.stderr


def _run(ruby: str, tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "stand_ins.rb").write_text(STAND_INS)
    env = {**os.environ, "STAND_IN_STORE": str(tmp_path / "runners.json"),
           "CDL_RUNNER_DESCRIPTION": "cdl platform",
           "CDL_RUNNER_TOKEN_FILE": str(tmp_path / "token"), **extra}
    return subprocess.run([ruby, "-r", str(tmp_path / "stand_ins.rb"), str(SCRIPT)],
                          capture_output=True, text=True, timeout=60, env=env, check=False)


def test_it_creates_the_runner_once_and_keeps_the_token_off_stdout(ruby: str,
                                                                   tmp_path: Path) -> None:
    first = _run(ruby, tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "created\n"
    token_file = tmp_path / "token"
    token = token_file.read_text()
    assert token.startswith("glrt-") and token not in first.stdout + first.stderr
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    again = _run(ruby, tmp_path)
    assert again.returncode == 0 and again.stdout == "exists\n", again.stderr
    assert token_file.read_text() == token  # the same runner, found by its description


def test_without_an_administrator_it_fails_and_says_why(ruby: str, tmp_path: Path) -> None:
    run = _run(ruby, tmp_path, STAND_IN_NO_ADMIN="1")
    assert run.returncode != 0 and "no active administrator" in run.stderr
    assert not (tmp_path / "token").exists()
