"""Use case 2 (paper §5.2): Fashion-MNIST image classification with Keras under Determined."""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from usecases.errors import CDLError
from usecases.fmnist import idx
from usecases.native_logs import import_keras
from usecases.stores.labelstudio import media_url
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
DEFAULT_DATA = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")


@functools.lru_cache(maxsize=2)
def _images(store: MLData, split: str, images_sha: str) -> np.ndarray:
    # Cached: items() and featurize() both need the pixels; decompress 26 MB once, not twice.
    name = idx.FILES[split][0]
    return idx.parse(name, idx.decompress(name, store.get(images_sha)), 3)


def _written(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def _read(store: MLData, split: str, images_sha: str, labels_sha: str) -> idx.Split:
    name = idx.FILES[split][1]
    labels = idx.parse(name, idx.decompress(name, store.get(labels_sha)), 1)
    return idx.check_split(split, _images(store, split, images_sha), labels)


class FashionMNIST:
    name = "fmnist"
    model_name = "fmnist"
    classes = CLASSES
    model_dir = MODEL_DIR
    # the labels came with the data (the paper did not label Fashion-MNIST): they are the
    # baseline, and Label Studio holds the images for people to review
    labels_round_trip = False
    label_to_name = "image"
    validation_fraction = 0.2
    runtime = "runtime.FashionRuntime"

    def default_data(self) -> Path:
        return DEFAULT_DATA

    def scan(self, options: DataOptions) -> tuple[list[Candidate], dict[str, Any]]:
        """The four IDX files, validated; anything else in the folder is quarantined."""
        folder = options.folder
        expected = {name for pair in idx.FILES.values() for name in pair}
        missing = sorted(name for name in expected if not (folder / name).is_file())
        if missing:
            raise CDLError(f"{folder} lacks {', '.join(missing)}",
                           "install Debian's dataset-fashion-mnist or pass --data with the "
                           "four official IDX .gz files")
        blobs = {name: (folder / name).read_bytes() for name in expected}
        for split, (images, labels) in idx.FILES.items():
            idx.read_split(split, blobs[images], blobs[labels])  # raises on a bad file
        candidates = [Candidate(name, name, blob, None, "valid")
                      for name, blob in sorted(blobs.items())]
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            rel = path.relative_to(folder).as_posix()
            if rel not in expected:
                candidates.append(Candidate(rel, rel, path.read_bytes(), None, "quarantined",
                                            "not one of the four Fashion-MNIST IDX files"))
        return candidates, {"format": "idx-ubyte-gz", "image_shape": list(idx.IMAGE_SHAPE)}

    def needs_split(self) -> bool:
        return False  # the dataset ships its own train (60,000) / test (10,000) split

    def _splits(self, manifest: Manifest, store: MLData) -> dict[str, tuple[str, idx.Split]]:
        sha = {e.path: e.sha256 for e in manifest.entries
               if e.status == "valid" and not is_sample(e)}
        return {split: (sha[images], _read(store, split, sha[images], sha[labels]))
                for split, (images, labels) in idx.FILES.items()}

    def items(self, manifest: Manifest, store: MLData) -> list[Item]:
        found = []
        for split, (images_sha, data) in self._splits(manifest, store).items():
            name = idx.FILES[split][0]
            for i, (pixels, label) in enumerate(zip(data.images, data.labels, strict=True)):
                digest = hashlib.blake2b(pixels.tobytes(), digest_size=8).hexdigest()
                # The split is the dataset's own, so the group only names identical images.
                found.append(Item(f"{split}/{i:05d}", f"{name}#{i}", CLASSES[label], split,
                                  group=digest, content=digest, source=f"{images_sha}#{i}"))
        return found + sample_items(manifest)

    def _pixels(self, item: Item, store: MLData) -> np.ndarray:
        if "#" not in item.source:  # a served image added as feedback: its raw pixels
            return np.frombuffer(store.get(item.source), np.uint8).reshape(idx.IMAGE_SHAPE)
        images_sha, index = item.source.split("#")
        return _images(store, item.split, images_sha)[int(index)]

    def task_data(self, item: Item, store: MLData, media: Path | None) -> dict[str, Any]:
        """The image as a PNG file Label Studio serves from ``media`` (named by its content,
        written once), or inline as a data URL for a Label Studio with no such folder."""
        name = f"{item.content}.png"
        if media is not None and _written(media / name):
            return {"image": media_url(media, name)}
        png = io.BytesIO()
        Image.fromarray(self._pixels(item, store), mode="L").save(png, format="PNG")
        if media is None:
            return {"image": "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()}
        media.mkdir(parents=True, exist_ok=True)
        # Renamed into place but not fsynced: 70,000 fsyncs would take minutes, and a file a
        # crash left empty is written again (a cache of ML Data, not a record).
        temp = media / f".{name}.{os.getpid()}"
        temp.write_bytes(png.getvalue())
        os.replace(temp, media / name)
        return {"image": media_url(media, name)}

    def featurize(self, items: list[Item], store: MLData,
                  options: DataOptions) -> tuple[np.ndarray, dict[str, Any]]:
        rows = [self._pixels(item, store) for item in items]
        pixels = np.stack(rows) if rows else np.zeros((0, *idx.IMAGE_SHAPE), np.uint8)
        return pixels, {"features": "pixels-uint8-v1"}

    def train(self, config: dict[str, Any], hparams: dict[str, Any], epochs: int,
              checkpoint_root: Path, on_validation: OnValidation | None) -> tuple[History,
                                                                                  Path | None]:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from usecases.fmnist.train import fit

        return training.train_keras(
            lambda core, callback: fit(core, callback, config, hparams, epochs),
            MODEL_DIR, epochs, checkpoint_root, on_validation)

    def export(self, checkpoint: Path, hparams: dict[str, Any], features: Path,
               folder: Path) -> None:
        """The Keras model file and the label names: all serving needs, no Determined."""
        trained = self._load(checkpoint / training.KERAS_MODEL_FILE, "checkpoint",
                             "delete it and run `cdl demo` again to retrain")
        keras = import_keras()

        # Serving needs the layers and weights, not the optimizer's state (half the file).
        serving = keras.Sequential.from_config(trained.get_config())
        serving.set_weights(trained.get_weights())
        serving.save(folder / "model.keras")
        (folder / "model.json").write_text(json.dumps({
            "usecase": self.name,
            "classes": list(self.classes),
            "weights": "model.keras",
            "input_shape": list(idx.IMAGE_SHAPE),
            "input": "uint8 pixels 0..255, normalized to 0..1 by usecases.serving.fashion",
            "hidden_size": int(hparams["hidden_size"]),
        }, indent=1))
        shutil.copytree(checkpoint, folder / "checkpoint")

    def _load(self, path: Path, what: str, fix: str) -> Any:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        keras = import_keras()

        try:
            return keras.models.load_model(path)
        except Exception as exc:  # any unreadable model file is reported the same way
            raise CDLError(f"{what} {path} is corrupt ({type(exc).__name__})", fix) from None

    def predict(self, artifact: Path, inputs: np.ndarray) -> np.ndarray:
        from usecases.serving.fashion import normalize

        model = self._load(artifact / "model.keras", "model", "run `cdl demo` again to train "
                           "and register a new version")
        logits = model.predict(normalize(inputs), batch_size=1024, verbose=0)
        return np.asarray(logits).argmax(axis=1)


    def payload(self, items: list[Item], store: MLData) -> dict[str, Any]:
        pixels, _ = self.featurize(items, store, DataOptions(Path(), 0, 0))
        return {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": list(pixels.shape),
                            "data": pixels.ravel().tolist()}]}

    def served_inputs(self, items: list[Item], store: MLData) -> list[bytes]:
        pixels, _ = self.featurize(items, store, DataOptions(Path(), 0, 0))
        return [image.tobytes() for image in pixels]

    def input_signals(self, artifact: Path, inputs: Sequence[str | bytes]
                      ) -> dict[str, np.ndarray]:
        """Each image's mean intensity, its spread, and its share of near-black background
        (an inverted image turns these around; noise fills the background)."""
        raw = [i if isinstance(i, bytes) else i.encode() for i in inputs]
        pixels = np.frombuffer(b"".join(raw), np.uint8).reshape(len(raw), -1).astype(np.float64)
        return {"mean intensity": pixels.mean(axis=1),
                "intensity spread (std)": pixels.std(axis=1),
                "background share (pixels < 16)": (pixels < 16).mean(axis=1)}

    def compress(self, artifacts: Path, out: Path) -> None:
        """Keras int8 weight quantization of the Dense layers."""
        import warnings

        shutil.copytree(artifacts, out, ignore=shutil.ignore_patterns("checkpoint",
                                                                      "digests.json"))
        meta = json.loads((out / "model.json").read_text())
        model = self._load(out / meta["weights"], "model", "run `cdl demo` again")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "InputLayer/Flatten have no quantize method"
            model.quantize("int8")
        model.save(out / "model-int8.keras")
        (out / meta["weights"]).unlink()
        meta.update(weights="model-int8.keras", quantization="int8-weights")
        (out / "model.json").write_text(json.dumps(meta, indent=1))


USECASE = FashionMNIST()
