"""Use case 1 (paper §5.1): BBC news classification with PyTorch under Determined."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from usecases.bbc import dataset
from usecases.bbc.dataset import CLASSES, TextRules, Vocabulary, tokenize
from usecases.errors import CDLError
from usecases.stores.mldata import Manifest, MLData, is_sample
from usecases.workflow import training
from usecases.workflow.usecase import (
    Candidate,
    DataOptions,
    History,
    Item,
    OnValidation,
    sample_items,
)

MODEL_DIR = Path(__file__).parent
REPO_ROOT = MODEL_DIR.parent.parent


class BBCNews:
    name = "bbc"
    model_name = "bbc-news"
    classes = CLASSES
    model_dir = MODEL_DIR
    label_to_name = "text"
    labels_round_trip = True  # the paper's round trip through Label Studio
    validation_fraction = 0.1
    runtime = "runtime.NewsRuntime"

    def default_data(self) -> Path:
        datasets = os.environ.get("CDL_DATASETS")
        base = Path(datasets) if datasets else REPO_ROOT.parent / "shared" / "datasets"
        return base / "bbc"

    def scan(self, options: DataOptions) -> tuple[list[Candidate], dict[str, Any]]:
        rules = TextRules(min_chars=options.min_chars, max_bytes=options.max_bytes)
        return dataset.scan(options.folder, rules), rules.as_dict()

    def needs_split(self) -> bool:
        return True  # the raw dataset has no train/test split of its own

    def items(self, manifest: Manifest, store: MLData) -> list[Item]:
        # An article's group (for the split) and its content hash are both its sha256; a
        # served article added as feedback is its text's bytes, read the same way.
        return [Item(e.item_id, e.path, str(e.label), str(e.split), group=e.sha256,
                     content=e.sha256, source=e.sha256)
                for e in manifest.entries if e.status == "valid" and not is_sample(e)
                ] + sample_items(manifest)

    def task_data(self, item: Item, store: MLData, media: Path | None) -> dict[str, Any]:
        text, _ = dataset.clean(store.get(item.source))
        return {"text": text}

    def _vocab_path(self, options: DataOptions) -> Path:
        path = options.vocab or options.folder / dataset.VOCAB_FILE
        if not path.is_file():
            raise CDLError(f"vocabulary file {path} not found",
                           f"pass --vocab, or put {dataset.VOCAB_FILE} in the --data folder")
        return path

    def featurize(self, items: list[Item], store: MLData,
                  options: DataOptions) -> tuple[np.ndarray, dict[str, Any]]:
        vocab_path = self._vocab_path(options)
        vocab = Vocabulary.load(vocab_path)
        if len(vocab) == 0:
            raise CDLError(f"vocabulary file {vocab_path} is empty",
                           "pass --vocab with the BBC vocabulary (one stem per line)")
        texts = (dataset.clean(store.get(i.source))[0] for i in items)
        identity = {
            "features": "porter-stem-counts-v1",
            "vocab_sha256": hashlib.sha256(vocab_path.read_bytes()).hexdigest(),
            "vocab_path": str(vocab_path),
        }
        counts = vocab.counts(texts) if items else np.zeros((0, len(vocab)), np.float32)
        return counts.astype(np.uint16), identity

    def train(self, config: dict[str, Any], hparams: dict[str, Any], epochs: int,
              checkpoint_root: Path, on_validation: OnValidation | None) -> tuple[History,
                                                                                  Path | None]:
        from usecases.bbc.trial import NewsTrial

        return training.train_pytorch(NewsTrial, MODEL_DIR, config, hparams, epochs,
                                      checkpoint_root, on_validation)

    def export(self, checkpoint: Path, hparams: dict[str, Any], features: Path,
               folder: Path) -> None:
        """Weights, vocabulary and label encoding: all serving needs, no Determined."""
        import torch

        from usecases.serving.news import NETWORK

        try:
            state = torch.load(checkpoint / "state_dict.pth", map_location="cpu",
                               weights_only=False)
            weights = state["models_state_dict"][0]
        except Exception as exc:  # any unreadable checkpoint is reported the same way
            raise CDLError(f"checkpoint {checkpoint} is corrupt ({type(exc).__name__})",
                           "delete it and run `cdl demo` again to retrain") from None
        torch.save(weights, folder / "model.pt")
        transform = json.loads((features / "transform.json").read_text())["transform"]
        shutil.copyfile(transform["vocab_path"], folder / "vocab.txt")
        n_features = int(weights["net.0.weight"].shape[1])
        (folder / "model.json").write_text(json.dumps({
            "usecase": self.name,
            "classes": list(self.classes),
            "weights": "model.pt",
            "network": NETWORK,
            "n_features": n_features,
            "hidden_size": int(hparams["hidden_size"]),
            "dropout": float(hparams["dropout"]),
            "features": transform,
        }, indent=1))
        shutil.copytree(checkpoint, folder / "checkpoint")

    def predict(self, artifact: Path, inputs: np.ndarray) -> np.ndarray:
        import torch

        from usecases.serving.news import load_network

        meta = json.loads((artifact / "model.json").read_text())
        try:
            model = load_network(artifact, meta)
        except ValueError as exc:  # a version of an earlier network
            raise CDLError(f"model {artifact} cannot be loaded: {exc}",
                           "run `cdl demo --retrain` to train and register a new version"
                           ) from None
        except Exception as exc:
            weights = artifact / meta.get("weights", "model.pt")
            raise CDLError(f"model weights {weights} are corrupt ({type(exc).__name__})",
                           "run `cdl demo` again to train and register a new version") from None
        with torch.no_grad():
            logits = model(torch.from_numpy(inputs.astype(np.float32)))
        return logits.argmax(dim=1).numpy()

    def payload(self, items: list[Item], store: MLData) -> dict[str, Any]:
        texts = self.served_inputs(items, store)
        return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)],
                            "data": texts}]}

    def served_inputs(self, items: list[Item], store: MLData) -> list[str]:
        return [dataset.clean(store.get(i.source))[0] for i in items]

    def input_signals(self, artifact: Path, inputs: Sequence[str | bytes]
                      ) -> dict[str, np.ndarray]:
        """Each text's length in tokens, and the share of its tokens outside the served
        model's vocabulary (words it cannot see)."""
        known = set(Vocabulary.load(artifact / "vocab.txt").words)
        lengths, unknown = [], []
        for text in inputs:
            tokens = tokenize(text if isinstance(text, str) else text.decode("utf-8", "replace"))
            lengths.append(len(tokens))
            unknown.append(sum(t not in known for t in tokens) / len(tokens) if tokens else 0.0)
        return {"text length (tokens)": np.array(lengths, dtype=np.float64),
                "out-of-vocabulary rate": np.array(unknown, dtype=np.float64)}

    def compress(self, artifacts: Path, out: Path) -> None:
        """PyTorch dynamic int8 quantization of the linear layers."""
        import torch

        from usecases.serving.news import load_network, quantize_dynamic

        shutil.copytree(artifacts, out, ignore=shutil.ignore_patterns("checkpoint",
                                                                      "digests.json"))
        meta = json.loads((out / "model.json").read_text())
        quantized = quantize_dynamic(load_network(out, meta))
        torch.save(quantized.state_dict(), out / "model-int8.pt")
        (out / "model.pt").unlink()
        meta.update(weights="model-int8.pt", quantization="dynamic-int8")
        (out / "model.json").write_text(json.dumps(meta, indent=1))


USECASE = BBCNews()
