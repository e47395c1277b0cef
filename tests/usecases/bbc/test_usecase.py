from __future__ import annotations

from pathlib import Path

import pytest

from usecases.bbc.usecase import USECASE
from usecases.errors import CDLError


@pytest.mark.parametrize("content", [b"", b"not a torch file", b"PK\x03\x04truncated zip"])
def test_a_corrupt_checkpoint_is_refused_at_registration(tmp_path: Path, content: bytes) -> None:
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "state_dict.pth").write_bytes(content)
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    with pytest.raises(CDLError, match="checkpoint .* is corrupt") as err:
        USECASE.export(checkpoint, {"hidden_size": 8, "dropout": 0.1}, tmp_path, artifact)
    assert "retrain" in err.value.fix
    assert not (artifact / "model.pt").exists()
