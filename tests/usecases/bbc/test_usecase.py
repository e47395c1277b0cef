from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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


def test_a_version_of_the_earlier_network_is_refused_with_retrain(tmp_path: Path) -> None:
    # model.json of before the network was named: five layers, weights that do not fit
    (tmp_path / "model.json").write_text(json.dumps({
        "usecase": "bbc", "classes": ["a", "b"], "weights": "model.pt", "n_features": 3,
        "hidden_size": 8, "dropout": 0.1}))
    with pytest.raises(CDLError, match="its network is 'five-layer") as err:
        USECASE.predict(tmp_path, np.zeros((1, 3), dtype=np.float32))
    assert "--retrain" in err.value.fix
