"""``cdl db check``: what an interrupted run can leave inconsistent in the local stores, found
and, where that is safe, repaired.

Safe to repair: files and trees a write left half-done (temp names), artifact folders and
checkpoints no row points at, experiments no model version came from, a dataset version's
missing row (recorded again from its manifest) and a row whose manifest is lost. Reported
only: a registered model version whose artifacts are missing or modified (the registry's
history is not rewritten; train a new version).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from usecases.errors import CDLError
from usecases.state import State, leftovers
from usecases.stores.local import Stores
from usecases.stores.registry import verify_artifacts


@dataclass
class Finding:
    kind: str
    what: str
    repairable: bool
    repaired: bool = False


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return all(f.repaired for f in self.findings)

    def add(self, kind: str, what: str, repairable: bool = True) -> Finding:
        finding = Finding(kind, what, repairable)
        self.findings.append(finding)
        return finding


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def check(state: State, stores: Stores, repair: bool = False, verify: bool = True) -> Report:
    """Find inconsistencies; with ``repair``, fix the safe ones (hold the writer lock).
    ``verify`` False skips re-hashing every registered version's artifacts (the slow part,
    which repairs nothing): what a run does on its way in."""
    report = Report()

    def found(kind: str, what: str, fix: bool = True) -> bool:
        """Record a finding; True when it is to be repaired now."""
        finding = report.add(kind, what, fix)
        finding.repaired = repair and fix
        return finding.repaired

    for path in leftovers(state.home):
        if found("interrupted write", str(path)):
            _remove(path)

    recorded = stores.mldata.versions()
    manifests = {p.parent.name for p in (state.mldata / "versions").glob("*/manifest.json")}
    for version in sorted(set(recorded) - manifests):
        if found("dataset version without its manifest", version):
            stores.mldata.drop(version)
    for version in sorted(manifests - set(recorded)):
        try:
            unrecorded = stores.mldata.load(version)
        except CDLError as exc:
            if found("damaged manifest", f"{version}: {exc.problem}"):
                _remove(stores.mldata.version_dir(version))
            continue
        # A manifest from before counts meant items cannot be recorded; the next run will.
        if found("dataset version without its row", version, unrecorded.counts is not None):
            stores.mldata.commit(unrecorded)
    for version in sorted(manifests & set(recorded)):
        try:
            manifest = stores.mldata.load(version)
        except CDLError as exc:
            if found("damaged manifest", f"{version}: {exc.problem}"):
                stores.mldata.drop(version)
            continue
        disagrees = manifest.counts is not None and recorded[version] != manifest.counts
        if disagrees and found("dataset version whose row disagrees with its manifest",
                               version):
            stores.mldata.commit(manifest)

    for experiment in stores.experiments.unregistered():
        if found("experiment without a model version", f"experiment {experiment}"):
            stores.experiments.delete(experiment)
    for folder in stores.models.orphans():
        if found("model artifacts without a registry row", str(folder)):
            _remove(folder)
    for entry in stores.models.versions() if verify else []:
        try:
            verify_artifacts(entry.artifact_path)
        except CDLError as exc:
            found("registered version with damaged artifacts",
                  f"{entry.name} v{entry.version}: {exc.problem}", fix=False)

    referenced = stores.experiments.checkpoints()
    for checkpoint in sorted((state.checkpoints / "determined").glob("*")):
        if str(checkpoint) not in referenced and found("checkpoint no trial points at",
                                                       str(checkpoint)):
            _remove(checkpoint)
    return report
