"""The state directory (``CDL_HOME``): database, datasets, checkpoints, models, logs, secrets."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class State:
    home: Path

    @classmethod
    def from_env(cls, home: str | Path | None = None) -> State:
        root = Path(home or os.environ.get("CDL_HOME") or ".cdl").expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        return cls(root)

    def dir(self, *parts: str, private: bool = False) -> Path:
        path = self.home.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        if private:
            path.chmod(0o700)
        return path

    @property
    def mldata(self) -> Path:
        return self.dir("mldata")

    @property
    def transforms(self) -> Path:
        return self.dir("transforms")

    @property
    def checkpoints(self) -> Path:
        return self.dir("checkpoints")

    @property
    def models(self) -> Path:
        return self.dir("models")

    @property
    def logs(self) -> Path:
        return self.dir("logs")

    @property
    def secrets(self) -> Path:
        return self.dir("secrets", private=True)

    def secret(self, name: str, nbytes: int = 24) -> str:
        """The named secret, generated on first use (owner-only file, never a default)."""
        path = self.secrets / name
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(nbytes))
        return path.read_text().strip()
