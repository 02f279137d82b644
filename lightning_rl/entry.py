"""nerveX's serial entry: train from a config in one call and get the run summary back."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import yaml

from lightning_rl.cli import RLCLI


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The config in the YAML file ``path``, as the dict :func:`serial_pipeline` takes (nerveX's name)."""
    with open(path) as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict):
        raise ValueError(f"{os.fspath(path)}: a config must be a YAML mapping, got {type(config).__name__}")
    return config


def serial_pipeline(
    config: str | os.PathLike | dict[str, Any], seed: int = 0, **overrides: Any
) -> dict[str, Any]:
    """Train with the CLI's machinery and return the run summary.

    Args:
        config: path of a YAML config (as in ``configs/``) or a dict of the same shape.
        seed: sets ``seed_everything`` and the DataModule's env/sampling ``seed``.
        overrides: dotted keys, e.g. ``**{"trainer.max_steps": 1000, "data.init_args.nstep": 3}``.

    Returns:
        ``{"env_steps", "train_iter", "eval_return_mean", "eval_error", "stop_value_reached", "wall_time_s",
        "ckpt_path"}`` (``eval_error``: why the last evaluation failed, else ``None``)
        (also written as ``result.json`` in the run's log directory).
    """
    if not isinstance(config, dict):
        with open(config) as f:
            config = yaml.safe_load(f)
    args = [
        "fit",
        "--config",
        yaml.safe_dump(config),
        "--seed_everything",
        str(seed),
        "--data.init_args.seed",
        str(seed),
    ]
    cli = RLCLI(args=[*args, *override_args(overrides)])
    return cli.result


def override_args(overrides: Mapping[str, Any]) -> list[str]:
    """Command-line overrides of dotted config keys: ``{"data.init_args.nstep": 3}`` ->
    ``["--data.init_args.nstep=3"]``; values as one-line YAML (``[128, 128]``, ``false``), strings as
    they are."""
    return [
        f"--{key}={value if isinstance(value, str) else _to_yaml(value)}" for key, value in overrides.items()
    ]


def _to_yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
