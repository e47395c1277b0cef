"""Training entrypoint for BBC news: ``python3 -m usecases.bbc.train``, as the experiment YAMLs say.

On a cluster the master supplies the experiment config, the trial's hyperparameters and the
checkpoint to resume from (``det.get_cluster_info()``). The trial trains for the searcher's
length: ``searcher.max_time`` epochs with ``time_metric: epochs`` (adaptive ASHA), or
``hyperparameters.epochs`` (``single``).

Without a master (Determined's local training mode, e.g. to try a YAML before submitting it) the
same ``fit`` runs on the experiment named by ``CDL_EXPERIMENT``: see
``usecases.workflow.training.trial_inputs``.

``cdl demo`` does not start this module: it trains in-process with
``usecases.workflow.training.train_pytorch``, on the same trial class.
"""

from __future__ import annotations

from usecases.workflow.model import training_epochs
from usecases.workflow.training import entrypoint, trial_inputs


def main() -> None:
    """Train (or resume) one trial: under the master if there is one, else in local mode."""
    info, config, hparams, latest_checkpoint = trial_inputs()
    epochs = training_epochs(config, hparams)
    # Loaded once the inputs are known: a missing one is reported in a second, not after torch.
    import torch
    from determined import pytorch

    from usecases.bbc.trial import NewsTrial

    if info is None:
        # On a cluster pytorch.init seeds from the trial's seed; locally nothing else does.
        torch.manual_seed(int(config.get("reproducibility", {}).get("experiment_seed", 0)))
    # TensorBoard files are uploaded to the master; local mode has nowhere to put them.
    with pytorch.init(hparams=hparams, exp_conf=config,
                      enable_tensorboard_logging=info is not None) as context:
        trainer = pytorch.Trainer(NewsTrial(context), context)
        # A checkpoint every epoch, so a restart after a failure resumes from the last one;
        # "none" adds none after validations: the final checkpoint is the trained model, the
        # one `cdl demo` registers too.
        trainer.fit(
            max_length=pytorch.Epoch(epochs),
            validation_period=pytorch.Epoch(1),
            checkpoint_period=pytorch.Epoch(1),
            checkpoint_policy="none",
            reporting_period=pytorch.Epoch(1),
            latest_checkpoint=latest_checkpoint,
        )


if __name__ == "__main__":
    entrypoint(main)
