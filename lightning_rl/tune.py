"""``lightning-rl tune``: hyperparameter search with Optuna (the library rl-zoo uses) over ``fit`` runs.

    lightning-rl tune --config configs/cartpole_dqn.yaml --space configs/tune/cartpole_dqn.yaml \\
        --n-trials 20 [--out runs/tune/cartpole_dqn] [fit overrides: --data.init_args.max_env_steps=20000]

Each trial is one ``fit`` of the config with the trial's values set (every other argument passes through
to ``fit``), in ``<out>/trials/<number>``. The search space is a YAML mapping from dotted config keys to
distributions::

    model.init_args.lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
    model.init_args.target_tau: {type: float, low: 0.01, high: 0.1}
    data.init_args.batch_size: {type: categorical, choices: [64, 128, 256]}
    data.init_args.nstep: {type: int, low: 1, high: 5}

A trial's value is its mean evaluation return over the env-step budget (``--objective mean``, the area
under its learning curve: rewards learning fast and staying there; a run ended by ``stop_value`` keeps its
last return to the budget's end) or its last evaluation's return (``last``). Trials are pruned on
evaluation returns by Optuna's median rule, comparing trials at the same evaluation (every
``evaluator.eval_interval`` updates): a trial whose return at its k-th evaluation is below the median of
earlier trials' at their k-th stops there.

The study lives in ``<out>/study.db`` (SQLite): running the same command again continues it until
``--n-trials`` trials have finished (a trial whose process died is failed after a minute without heartbeat
and its values tried again). Written to ``<out>``: ``trials.csv`` (every trial: state, value, values
tried), ``best.json`` and ``best_config.yaml``, the best trial's whole config, which
``lightning-rl fit --config <out>/best_config.yaml`` trains.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import yaml

from lightning_rl.callbacks import Evaluator
from lightning_rl.errors import ReportedError
from lightning_rl.utils.checks import ConfigError

if TYPE_CHECKING:
    import optuna

__all__ = ["Distribution", "TrialReporter", "budget_mean", "load_space", "main", "run_study", "write_results"]

OBJECTIVES = ("mean", "last")
PRUNERS = ("median", "none")
_KINDS = {
    "float": ("low", "high", "log", "step"),
    "int": ("low", "high", "log", "step"),
    "categorical": ("choices",),
}
HEARTBEAT_S = 20  # a trial whose process died is failed after 3 heartbeats missed


@dataclass(frozen=True)
class Distribution:
    """One search-space entry: ``key`` (a dotted config key) drawn as ``kind`` with ``args``."""

    key: str
    kind: str
    args: dict[str, Any]

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, self.args["choices"])
        suggest = trial.suggest_float if self.kind == "float" else trial.suggest_int
        return suggest(self.key, **self.args)


def load_space(path: str | Path) -> list[Distribution]:
    """The search space in the YAML file ``path``; a :class:`ConfigError` naming the entry at fault."""
    try:
        space = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"space: cannot read {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"space: {path} must map dotted config keys to distributions")
    return [_distribution(str(key), spec) for key, spec in space.items()]


def _distribution(key: str, spec: Any) -> Distribution:
    field = f"space.{key}"
    if not isinstance(spec, dict) or spec.get("type") not in _KINDS:
        kind = spec.get("type") if isinstance(spec, dict) else spec
        raise ConfigError(f"{field}.type: got {kind!r}; allowed: {', '.join(map(repr, _KINDS))}")
    kind = spec["type"]
    args = {k: v for k, v in spec.items() if k != "type"}
    unknown = sorted(set(args) - set(_KINDS[kind]))
    if unknown:
        raise ConfigError(f"{field}: unknown keys {unknown}; allowed for {kind}: {', '.join(_KINDS[kind])}")
    if kind == "categorical":
        choices = args.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{field}.choices: got {choices!r}; allowed: a non-empty list")
        return Distribution(key, kind, args)
    number = float if kind == "float" else int
    for bound in ("low", "high"):
        value = args.get(bound)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or number is int
            and value != int(value)
        ):
            raise ConfigError(
                f"{field}.{bound}: got {value!r}; allowed: {'an int' if number is int else 'a float'}"
            )
        args[bound] = number(value)
    if not args["low"] < args["high"]:
        raise ConfigError(f"{field}: low must be < high, got {args['low']} and {args['high']}")
    if args.get("log") and args["low"] <= 0:
        raise ConfigError(f"{field}.low: got {args['low']}; allowed: > 0 with log: true")
    return Distribution(key, kind, args)


class TrialReporter(pl.Callback):
    """Reports each evaluation's return to the Optuna trial (step = the evaluation's number) and stops the
    run, marking it pruned, when the pruner says so. Runs after the :class:`Evaluator` (Lightning calls a
    ``trainer_defaults`` callback after the config's and the ``evaluator``)."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial
        self.returns: list[float] = []
        self.env_steps: list[int] = []  # of each evaluation in returns
        self.pruned = False
        self._seen = 0

    def _read(self, trainer: pl.Trainer) -> None:
        evaluator = next(cb for cb in trainer.callbacks if isinstance(cb, Evaluator))
        if evaluator.n_evaluations == self._seen:
            return
        self._seen = evaluator.n_evaluations
        if evaluator.last_return is None:  # a failed evaluation reports nothing
            return
        self.returns.append(evaluator.last_return)
        self.env_steps.append(trainer.lightning_module.env_steps)
        self.trial.report(evaluator.last_return, step=len(self.returns))
        if self.trial.should_prune():
            self.pruned = True
            trainer.should_stop = True

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if not self.pruned:
            self._read(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.pruned:
            self._read(trainer)  # the final evaluation


def budget_mean(returns: list[float], env_steps: list[int], budget: int | None) -> float:
    """The mean evaluation return over the env-step budget: each evaluation's return holds until the next
    one, the last until ``budget`` (a run that stopped at ``stop_value`` keeps that return; stopping
    early is no loss). Over the evaluations alone where there is no env-step budget (offline data)."""
    ends = [*env_steps[1:], max(budget or 0, env_steps[-1])]
    span = ends[-1] - env_steps[0]
    if budget is None or span <= 0:
        return sum(returns) / len(returns)
    return sum(r * (end - start) for r, start, end in zip(returns, env_steps, ends, strict=True)) / span


def _trial_args(fit_args: list[str], params: Mapping[str, Any], root: Path) -> list[str]:
    from lightning_rl.entry import override_args

    return [
        "fit",
        *fit_args,
        *override_args(params),
        f"--trainer.default_root_dir={root}",
        "--trainer.enable_progress_bar=false",
    ]


def run_study(
    fit_args: list[str],
    space: list[Distribution],
    n_trials: int,
    out: Path,
    objective: str = "mean",
    pruner: str = "median",
    startup_trials: int = 3,
    warmup_evals: int = 3,
    seed: int = 0,
) -> optuna.Study:
    """Run (or continue) the study in ``out/study.db`` until ``n_trials`` trials have finished."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    from lightning_rl.cli import RLCLI, TRAINER_DEFAULTS

    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the heartbeat is experimental in Optuna 5; we rely on it knowingly
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        storage = RDBStorage(
            f"sqlite:///{(out / 'study.db').resolve()}",
            heartbeat_interval=HEARTBEAT_S,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
        )
    study = optuna.create_study(
        storage=storage,
        study_name=out.name,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials),
        pruner=(
            optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_evals)
            if pruner == "median"
            else optuna.pruners.NopPruner()
        ),
        load_if_exists=True,
    )

    def run_trial(trial: optuna.Trial) -> float:
        params = {d.key: d.suggest(trial) for d in space}
        reporter = TrialReporter(trial)
        root = out / "trials" / str(trial.number)
        try:
            cli = RLCLI(
                args=_trial_args(fit_args, params, root),
                trainer_defaults={**TRAINER_DEFAULTS, "callbacks": [reporter]},
            )
        except ConfigError:
            raise  # the config itself is wrong: every trial would fail so
        except ReportedError as err:  # this trial's values diverged, or its envs broke: the next may not
            print(f"trial {trial.number}: failed: {err}", file=sys.stderr)
            return math.nan
        finally:
            _finish_wandb_run()
        trial.set_user_attr("config", str(Path(cli.trainer.log_dir or root) / "config.yaml"))
        trial.set_user_attr("env_steps", cli.datamodule.env_steps)
        returns = reporter.returns
        if reporter.pruned:
            print(
                f"trial {trial.number}: pruned at evaluation {len(returns)} (return {returns[-1]:g}) {params}"
            )
            raise optuna.TrialPruned()
        if not returns:
            value = math.nan
        elif objective == "last":
            value = returns[-1]
        else:
            value = budget_mean(returns, reporter.env_steps, cli.datamodule.max_env_steps)
        print(f"trial {trial.number}: value {value:g} after {len(returns)} evaluations {params}")
        return value

    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    left = n_trials - len(study.get_trials(deepcopy=False, states=finished))
    if left > 0:
        study.optimize(
            run_trial,
            callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=finished)],
            gc_after_trial=True,
        )
    return study


def _finish_wandb_run() -> None:
    """Lightning's WandbLogger reuses a live wandb run: each trial must get its own."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


def write_results(study: optuna.Study, out: Path) -> dict[str, Any] | None:
    """``trials.csv``, and ``best.json`` + ``best_config.yaml`` once a trial has completed."""
    import optuna

    keys = sorted({key for trial in study.trials for key in trial.params})
    with open(out / "trials.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["number", "state", "value", "env_steps", "duration_s", *keys])
        for trial in study.trials:
            duration = trial.duration.total_seconds() if trial.duration else None
            row = [trial.number, trial.state.name, trial.value, trial.user_attrs.get("env_steps"), duration]
            writer.writerow(row + [trial.params.get(key) for key in keys])
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not any(t.value is not None and not math.isnan(t.value) for t in complete):
        return None
    best = study.best_trial
    config = yaml.safe_load(Path(best.user_attrs["config"]).read_text())
    config.get("trainer", {}).pop("default_root_dir", None)  # a fit from it writes to runs/, not the trial's
    config.get("trainer", {}).pop("enable_progress_bar", None)
    (out / "best_config.yaml").write_text(
        f"# lightning-rl tune: trial {best.number} of study {study.study_name}, value {best.value:g}\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    summary = {
        "trial": best.number,
        "value": best.value,
        "params": best.params,
        "config": str(out / "best_config.yaml"),
    }
    (out / "best.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="lightning-rl tune",
        description=__doc__.splitlines()[0],
        epilog="Any other argument (--config, --model.init_args.x=...) is passed to every trial's fit.",
    )
    parser.add_argument("--space", required=True, help="YAML search space: dotted config key -> distribution")
    parser.add_argument("--n-trials", type=int, required=True, help="finished trials the study should reach")
    parser.add_argument("--out", type=Path, help="study directory (default runs/tune/<first config's name>)")
    parser.add_argument("--objective", choices=OBJECTIVES, default="mean", help="a trial's value")
    parser.add_argument("--pruner", choices=PRUNERS, default="median", help="prune on evaluation returns")
    parser.add_argument("--startup-trials", type=int, default=3, help="trials before TPE and pruning start")
    parser.add_argument("--warmup-evals", type=int, default=3, help="a trial's evaluations never pruned")
    parser.add_argument("--sampler-seed", type=int, default=0, help="seed of the TPE sampler")
    args, fit_args = parser.parse_known_args(argv)
    if args.n_trials < 1:
        raise ConfigError(f"--n-trials: got {args.n_trials}; allowed: >= 1")
    for flag, value in (("--startup-trials", args.startup_trials), ("--warmup-evals", args.warmup_evals)):
        if value < 0:
            raise ConfigError(f"{flag}: got {value}; allowed: >= 0")
    configs = [fit_args[i + 1] for i, a in enumerate(fit_args[:-1]) if a == "--config"]
    configs += [a.split("=", 1)[1] for a in fit_args if a.startswith("--config=")]
    if not configs:
        raise ConfigError("--config: a tune needs the config its trials fit")
    out = args.out or Path("runs") / "tune" / Path(configs[0]).stem
    space = load_space(args.space)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is ours
    study = run_study(
        fit_args,
        space,
        args.n_trials,
        out,
        args.objective,
        args.pruner,
        args.startup_trials,
        args.warmup_evals,
        args.sampler_seed,
    )
    summary = write_results(study, out)
    states = [t.state.name.lower() for t in study.trials]
    counts = ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states))
    print(f"study {study.study_name}: {len(states)} trials ({counts}); written to {out}")
    if summary is None:
        raise ReportedError("no trial completed: no best config")
    print(f"best: trial {summary['trial']}, value {summary['value']:g}, {json.dumps(summary['params'])}")
    print(f"train it: lightning-rl fit --config {summary['config']}")
