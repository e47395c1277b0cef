"""Epoch time of the Fashion-MNIST model (Flatten → Dense(512, relu) → Dense(10), Keras 3) by
backend, batch size and steps per execution, on whatever device the backend finds.

Trains on 48,000 images (the pipeline's 80 % training share): one warm-up epoch (compilation),
then ``--epochs`` timed epochs; prints a Markdown table with seconds per epoch and the
validation accuracy reached, so a fast but broken setting shows.

    KERAS_BACKEND=tensorflow python benchmarks/fmnist_epoch.py            # the CPU figure
    KERAS_BACKEND=jax python benchmarks/fmnist_epoch.py --batch 256 4096  # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import print_table

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load(folder: Path) -> tuple[np.ndarray, ...]:
    from usecases.fmnist.idx import FILES, read_split
    from usecases.serving.fashion import normalize

    images, labels = FILES["train"]
    split = read_split("train", (folder / images).read_bytes(), (folder / labels).read_bytes())
    x, y = normalize(split.images), split.labels.astype(np.int32)
    return x[:48_000], y[:48_000], x[48_000:], y[48_000:]


def device() -> str:
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return str(jax.devices()[0].device_kind)
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"{len(gpus)} GPU(s)" if gpus else "cpu"


def measure(data: tuple[np.ndarray, ...], batch: int, steps_per_execution: int,
            epochs: int) -> dict[str, Any]:
    import keras

    from usecases.fmnist.model import build

    x, y, xv, yv = data
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            times.append(time.perf_counter() - self.start)

    keras.utils.set_random_seed(0)
    lr = 0.001 * max(1.0, (batch / 256) ** 0.5)  # larger batches take a larger step
    model = build(512, lr, (epochs + 1) * -(-len(x) // batch),
                  steps_per_execution=steps_per_execution)
    model.fit(x, y, batch_size=batch, epochs=epochs + 1, callbacks=[Clock()], verbose=0)
    accuracy = float(model.evaluate(xv, yv, batch_size=4096, verbose=0)[1])
    return {"batch": batch, "steps_per_execution": steps_per_execution,
            "seconds_per_epoch": float(np.median(times[1:])), "first_epoch": times[0],
            "val_accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 256, 1024, 4096])
    parser.add_argument("--steps-per-execution", type=int, nargs="+", default=[1])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import keras

    data = load(args.data)
    rows = [measure(data, b, s, args.epochs) for b in args.batch
            for s in args.steps_per_execution]
    where = (f"Keras {keras.__version__} on {keras.backend.backend()}, device {device()}, "
             f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(where)
    print()
    print_table(["batch", "steps/execution", "s/epoch", "first epoch (s)", "val accuracy"],
                [[r["batch"], r["steps_per_execution"], f"{r['seconds_per_epoch']:.3f}",
                  f"{r['first_epoch']:.2f}", f"{r['val_accuracy']:.3f}"] for r in rows])
    if args.out:
        args.out.write_text(json.dumps({"where": where, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
