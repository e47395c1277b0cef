"""``cdl maintain``: Model Maintenance's monitor over the serving version's Scoring Data."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from usecases import defaults
from usecases.cli.common import (
    SeedOpt,
    StudioPortOpt,
    app,
    console,
    data_options,
    guarded,
    progress_display,
    usecase_named,
)
from usecases.errors import CDLError
from usecases.state import State
from usecases.stores.labelstudio import DEFAULT_PORT

if TYPE_CHECKING:
    from usecases.stores.local import Stores
    from usecases.stores.registry import ModelVersion
    from usecases.workflow.context import Case, Context
    from usecases.workflow.feedback import Sent
    from usecases.workflow.usecase import UseCase


def _since(hours: float, since: str | None) -> datetime:
    if since is None:
        return datetime.now(UTC) - timedelta(hours=hours)
    try:
        moment = datetime.fromisoformat(since)
    except ValueError:
        raise CDLError(f"--since {since!r} is not an ISO 8601 time",
                       "write it like 2026-12-01T09:00:00+00:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def serving_version(state: State, model: str) -> int:
    """The version of ``model`` that `cdl serve` serves (its packaged folder's)."""
    from usecases.workflow.deploy import packaged_versions, served_models

    version = packaged_versions(served_models(state)).get(model)
    if version is None:
        raise CDLError(f"no version of {model} is packaged for serving",
                       "run `cdl demo` to package one, or pass --version")
    return version


@app.command()
def maintain(
    usecase: Annotated[str, typer.Option("--usecase", help="bbc or fmnist.")] = "bbc",
    version: Annotated[int | None, typer.Option("--version", help="Model version (default: "
                                                "the one packaged for serving).")] = None,
    hours: Annotated[float, typer.Option("--hours", min=0.0, help="Window: the last H "
                                         "hours of Scoring Data.")] = 24.0,
    since: Annotated[str | None, typer.Option("--since", help="Window start (ISO 8601); "
                                              "instead of --hours.")] = None,
    feedback: Annotated[int, typer.Option("--feedback", min=0, help="On drift, send this "
                                          "many served inputs, the least confident first, "
                                          "to Label Studio.")] = 0,
    collect: Annotated[bool, typer.Option("--collect", help="Record the labels set in the "
                                          "feedback project; the labeled samples join a new "
                                          "dataset version.")] = False,
    accept: Annotated[bool, typer.Option("--accept-predictions", help="With --collect: take "
                                         "the pre-annotations nobody reviewed as reviewed "
                                         "(a demo's stand-in for a person).")] = False,
    challenge: Annotated[bool, typer.Option("--challenge", help="Train a challenger on the "
                                            "dataset version the feedback built; promote it "
                                            "only if it is better.")] = False,
    dataset: Annotated[str | None, typer.Option("--dataset", help="With --challenge: the "
                                                "dataset version (default: the newest one "
                                                "with labeled feedback).")] = None,
    tolerance: Annotated[float, typer.Option("--tolerance", min=0.0, max=1.0, help="With "
                                             "--challenge: test accuracy the challenger may "
                                             "lose and still be promoted.")] = 0.01,
    trials: Annotated[int, typer.Option("--trials", min=1, help="With --challenge: ASHA "
                                        "trials.")] = defaults.TRIALS,
    seed: SeedOpt = defaults.SEED,
    label_studio: Annotated[bool, typer.Option(
        "--label-studio/--no-label-studio", help="With --challenge: label the new version "
        "through Label Studio, or store its labels directly.")] = True,
    label_studio_port: StudioPortOpt = DEFAULT_PORT,
    via: Annotated[str, typer.Option("--via", help="With --challenge: train here (local), or "
                                     "start the project's GitLab pipeline to train on the "
                                     "cluster (gitlab; CDL_GITLAB_URL, CDL_GITLAB_PROJECT, "
                                     "CDL_GITLAB_TRIGGER_TOKEN).")] = "local",
    ref: Annotated[str, typer.Option("--ref", help="With --via gitlab: the branch or tag "
                                     "whose pipeline runs.")] = "main",
) -> None:
    """Model Maintenance: does the serving version still see what it was trained on?
    Prediction drift (class-mix PSI) and input drift (Kolmogorov-Smirnov on label-free
    signals) over a window of its Scoring Data; the verdict and its evidence as JSON. With
    --feedback, drift sends served inputs to labeling; --collect turns their labels into a
    new dataset version; --challenge trains a challenger on it and promotes it only if it is
    better (a running `cdl serve` switches to it without downtime)."""
    from usecases.stores.local import open_stores
    from usecases.workflow import run
    from usecases.workflow.context import Case, RunOptions
    from usecases.workflow.maintenance import monitor

    def action() -> None:
        if accept and not collect:
            raise CDLError("--accept-predictions only applies to --collect",
                           "add --collect, or drop --accept-predictions")
        if sum((collect, challenge, bool(feedback))) > 1:
            raise CDLError("--feedback, --collect and --challenge are steps of their own",
                           "run one at a time: feedback, then collect, then challenge")
        if via not in ("local", "gitlab"):
            raise CDLError(f"--via {via!r} is not a place to train", "pass local or gitlab")
        if via == "gitlab" and not challenge:
            raise CDLError("--via gitlab only applies to --challenge", "add --challenge")
        chosen = usecase_named(usecase)
        start = _since(hours, since)
        state = State.from_env()
        if via == "gitlab":
            from usecases.cloud import gitlab

            where = gitlab.settings()  # before anything else: it needs nothing local
        number = version if version is not None else serving_version(state, chosen.model_name)
        if via == "gitlab":
            with open_stores(state) as stores:
                _trigger(stores, chosen, number, dataset, tolerance, ref, where)
            return
        if challenge:
            with progress_display() as display, run.open_run(
                    state, display, "cdl maintain",
                    label_studio_port if label_studio else None) as ctx:
                champion = ctx.stores.models.get(chosen.model_name, number)
                # the champion's own vocabulary (BBC), so that both read the same features
                vocab = champion.artifact_path / "vocab.txt"
                case = Case(chosen, RunOptions(
                    data_options(chosen, None, defaults.MAX_FILE_BYTES, defaults.MIN_CHARS,
                                 vocab if vocab.is_file() else None),
                    trials=trials, seed=seed))
                _challenge(ctx, case, champion, dataset, tolerance)
            return
        if collect:
            with progress_display(bar=False) as display, run.open_run(
                    state, display, "cdl maintain", label_studio_port) as ctx:
                _collect(ctx, chosen, number, accept)
            return
        if not feedback:
            with open_stores(state) as stores:
                _say(monitor(stores, chosen, stores.models.get(chosen.model_name, number),
                             start).to_dict())
            return
        with progress_display(bar=False) as display, run.open_run(
                state, display, "cdl maintain", label_studio_port) as ctx:
            _send(ctx, chosen, number, start, feedback)

    guarded(action)


def _say(verdict: dict[str, Any], sent: Sent | None = None) -> None:
    if sent is not None:
        verdict["feedback"] = asdict(sent)
    print(json.dumps(verdict, indent=2, default=str))
    reasons = "; ".join(verdict["reasons"])
    line = (f"{verdict['usecase']}: {verdict['model']} v{verdict['version']}, "
            f"{verdict['requests']} predictions since {verdict['since']}: {verdict['verdict']}"
            + (f" ({reasons})" if reasons else "; nothing to do"))
    if sent is not None:
        line += (f"; {sent.sent} served inputs sent to labeling at {sent.url}/projects/"
                 f"{sent.project} ({sent.pending} waiting for a label)")
    console.print(line, highlight=False, soft_wrap=True)


def _send(ctx: Context, chosen: UseCase, number: int, start: datetime, count: int) -> None:
    from usecases.workflow.feedback import send
    from usecases.workflow.maintenance import monitor

    stores = ctx.stores
    model = stores.models.get(chosen.model_name, number)
    verdict = monitor(stores, chosen, model, start)
    if verdict.verdict != "drift" or ctx.studio is None:
        _say(verdict.to_dict())
        return
    served = stores.scoring.served_inputs(model.name, str(model.version), start)
    _say(verdict.to_dict(), send(stores, ctx.studio(), chosen, model, served, count))


def _challenge(ctx: Context, case: Case, champion: ModelVersion, dataset: str | None,
               tolerance: float) -> None:
    from usecases.workflow.challenge import challenge
    from usecases.workflow.data import commit_version

    stores, usecase = ctx.stores, case.usecase
    chosen = _dataset(stores, usecase, dataset)
    version = commit_version(stores.mldata, usecase, stores.mldata.load(chosen), True)
    decision = challenge(ctx, case, champion, version, tolerance)
    print(json.dumps(decision.as_dict(), indent=2))
    verdict = "promoted" if decision.promoted else "not promoted"
    where = f"; {decision.served} now serves it" if decision.served else ""
    console.print(f"{usecase.name}: challenger v{decision.challenger} {verdict} over v"
                  f"{decision.champion}: {decision.reason}{where}", highlight=False,
                  soft_wrap=True)


def _dataset(stores: Stores, usecase: UseCase, dataset: str | None) -> str:
    """The dataset version a challenger trains on: ``dataset``, else the newest one with
    labeled feedback."""
    from usecases.workflow.feedback import latest_version

    chosen = dataset or latest_version(stores, usecase)
    if not stores.mldata.has(chosen):
        raise CDLError(f"dataset version {chosen} does not exist",
                       "pass --dataset with a version `cdl maintain --collect` printed")
    return chosen


def _trigger(stores: Stores, chosen: UseCase, number: int, dataset: str | None,
             tolerance: float, ref: str, where: tuple[str, str, str]) -> None:
    from usecases.cloud import gitlab

    url, project, token = where
    champion = stores.models.get(chosen.model_name, number)
    variables = gitlab.challenge_variables(chosen.name, _dataset(stores, chosen, dataset),
                                           champion.version, tolerance)
    triggered = gitlab.trigger(url, project, token, ref, variables)
    print(json.dumps(asdict(triggered), indent=2))
    console.print(f"{chosen.name}: GitLab pipeline {triggered.id} ({triggered.status}) trains "
                  f"the challenger of v{champion.version} on "
                  f"{variables['CDL_MAINTAIN_DATASET']}: {triggered.web_url}",
                  highlight=False, soft_wrap=True)


def _collect(ctx: Context, chosen: UseCase, number: int, accept: bool) -> None:
    from usecases.workflow.feedback import collect

    assert ctx.studio is not None  # open_run was given a port
    result = collect(ctx.stores, ctx.studio, chosen,
                     ctx.stores.models.get(chosen.model_name, number), accept)
    print(json.dumps(asdict(result), indent=2))
    if result.dataset_version is None:
        line = (f"{chosen.name}: no served input is labeled yet ({result.pending} waiting); "
                "label them in Label Studio, then run this again")
    else:
        counts = result.counts or {}
        line = (f"{chosen.name}: {result.labeled} served inputs labeled ({result.new_labels} "
                f"new, {result.pending} waiting): dataset version {result.dataset_version} = "
                f"{result.base_version} + the labeled samples ({counts.get('train')} train, "
                f"{counts.get('test')} test items)")
    console.print(line, highlight=False, soft_wrap=True)
