"""The data pipeline's clean/validate step as a Pachyderm worker (paper §3.2, on the cluster).

Pachyderm mounts the input commit at ``/pfs/<input>`` and commits whatever the worker writes to
``/pfs/out`` to the pipeline's output repo. This runs the same code as the local ingest: the use
case's scan decides each file's validity, and ``workflow.data.build_manifest`` derives the
version id and draws the split. It writes:

- ``data/<path>``: the valid files (and the dataset's own metadata files, the vocabulary);
- ``quarantine/<path>``: every invalid file, kept, never dropped;
- ``quarantine.json``: each quarantined file with its sha256, size and reason;
- ``manifest.json``: the version (the local store's manifest format), its ``source`` the input
  commit (``<input>_COMMIT``, which Pachyderm sets) that is its lineage key.

Usage (the pipeline spec's command, ``usecases.cluster.pipelines``)::

    python -m usecases.cluster.worker --usecase bbc --input /pfs/raw --out /pfs/out

Exit status 1 with one line on stderr when the input cannot be validated at all (no valid
file, a use case's required file missing): Pachyderm marks the job failed with that line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from usecases import defaults
from usecases.errors import CDLError
from usecases.stores.mldata import Manifest, sha256_bytes
from usecases.workflow.data import SplitRules, build_manifest, check_source
from usecases.workflow.usecase import DataOptions

DATA = "data"
QUARANTINE = "quarantine"
QUARANTINE_LIST = "quarantine.json"
MANIFEST = "manifest.json"


def validate(usecase_name: str, source: Path, out: Path, max_bytes: int = defaults.MAX_FILE_BYTES,
             min_chars: int = defaults.MIN_CHARS, seed: int = defaults.SEED) -> Manifest:
    """Validate the raw files under ``source`` and write the version to ``out``."""
    from usecases.cli.common import usecase_named

    usecase = usecase_named(usecase_name)
    check_source(source)
    candidates, rules = usecase.scan(DataOptions(folder=source, max_bytes=max_bytes,
                                                 min_chars=min_chars))
    split = SplitRules(seed=seed) if usecase.needs_split() else None
    manifest = build_manifest(usecase.name, source, candidates,
                              [sha256_bytes(c.data) for c in candidates], rules, split)
    commit = os.environ.get(f"{source.name}_COMMIT")
    if commit:
        manifest.source = f"pfs:{source.name}@{commit}"
    for candidate in candidates:
        folder = QUARANTINE if candidate.status == "quarantined" else DATA
        _write(out / folder / candidate.path, candidate.data)
    _write(out / QUARANTINE_LIST, json.dumps(
        [{"path": e.path, "sha256": e.sha256, "size": e.size, "reason": e.reason}
         for e in manifest.quarantined], indent=1).encode())
    _write(out / MANIFEST, manifest.to_json().encode())
    return manifest


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def summary(manifest: Manifest) -> str:
    files = manifest.files()
    return (f"{manifest.usecase}: version {manifest.version} from {manifest.source}: "
            f"{files['valid']} valid, {files['quarantined']} quarantined, "
            f"{files['metadata']} metadata files")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m usecases.cluster.worker",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--usecase", required=True, choices=("bbc", "fmnist"))
    parser.add_argument("--input", type=Path, required=True, help="the input commit's folder")
    parser.add_argument("--out", type=Path, default=Path("/pfs/out"))
    parser.add_argument("--max-bytes", type=int, default=defaults.MAX_FILE_BYTES)
    parser.add_argument("--min-chars", type=int, default=defaults.MIN_CHARS)
    parser.add_argument("--seed", type=int, default=defaults.SEED)
    args = parser.parse_args(argv)
    try:
        manifest = validate(args.usecase, args.input, args.out, args.max_bytes, args.min_chars,
                            args.seed)
    except CDLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary(manifest))
    for entry in manifest.quarantined:
        print(f"quarantined {entry.path}: {entry.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
