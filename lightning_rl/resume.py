"""What a run started with ``--ckpt_path`` takes from the checkpoint and what from the config (entry layer).

LightningCLI merges the checkpoint's hyperparameters over the parsed config, so a value the user sets
on resume (``--model.init_args.gamma 0.5``) would be silently replaced by the checkpoint's. Here:

- the checkpoint must hold the config's policy class, else one line names both;
- every model argument the user set explicitly (in a config file or a flag) wins, and each one that
  differs from the checkpoint's is reported in one line; the rest come from the checkpoint, so a resume
  with only ``--ckpt_path`` continues the run exactly as it was configured;
- an override the saved weights cannot take (a network shape: ``hidden_sizes``, ``dueling``, ...) is
  refused with one line naming the field, found by building the policy with it and comparing the
  shapes of its parameters with the checkpoint's.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from jsonargparse import Namespace
from pytorch_lightning.cli import LightningArgumentParser, instantiate_module

from lightning_rl.policies import RLPolicy
from lightning_rl.utils.integrity import CheckpointError

__all__ = ["merge_checkpoint_hparams"]

_LINKED = {"env_spec"}  # filled from the DataModule at instantiation, never set by the user


def merge_checkpoint_hparams(
    parser: LightningArgumentParser,
    config: Namespace,
    explicit: Namespace,
    subcommand: str,
    ckpt_path: str,
    checkpoint: dict[str, Any],
) -> Namespace:
    """``config`` with the checkpoint's model hyperparameters filled in where ``explicit`` (the same
    arguments parsed without defaults) sets none; prints one line per explicit value that differs."""
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    hparams.pop("_instantiator", None)
    class_path = hparams.get("_class_path")
    if not hparams or class_path is None:
        return config
    model = config[subcommand].get("model")
    config_class = model.get("class_path") if isinstance(model, Namespace) else None
    if config_class is not None and _resolve(config_class) != _resolve(class_path):
        raise CheckpointError(
            f"{ckpt_path} holds a {class_path.rsplit('.', 1)[-1]} policy; "
            f"the config's model is {config_class}"
        )
    chosen = _explicit_init_args(explicit, subcommand)
    current = model.get("init_args") if config_class is not None else None
    overrides = {}
    for key in sorted(chosen & hparams.keys() - _LINKED):
        value = _plain(current.get(key)) if isinstance(current, Namespace) else None
        if value != hparams[key]:
            overrides[key] = value
    if overrides:
        _check_weights_fit(hparams, overrides, checkpoint, ckpt_path)
    for key, value in overrides.items():
        notice = f"resume: model.init_args.{key} = {value!r} (the checkpoint has {hparams[key]!r})"
        print(notice, file=sys.stderr)
    merged = {k: v for k, v in hparams.items() if k not in chosen}
    merged = {"class_path": merged.pop("_class_path"), "dict_kwargs": merged}
    return parser.parse_object({subcommand: {"model": merged}}, config)


def _explicit_init_args(explicit: Namespace, subcommand: str) -> set[str]:
    model = explicit.get(subcommand, Namespace()).get("model") if isinstance(explicit, Namespace) else None
    init_args = model.get("init_args") if isinstance(model, Namespace) else None
    return set(vars(init_args)) if isinstance(init_args, Namespace) else set()


def _plain(value: Any) -> Any:
    return value.as_dict() if isinstance(value, Namespace) else value


def _resolve(class_path: str) -> Any:
    """The class a dotted path names (``lightning_rl.policies.DQN`` and ``...dqn.DQN`` are one); the
    path itself if it does not import."""
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return class_path


def _check_weights_fit(
    hparams: dict[str, Any], overrides: dict[str, Any], checkpoint: dict[str, Any], ckpt_path: str
) -> None:
    """Refuse overrides that change the shapes of the policy's parameters (the weights cannot load)."""
    saved = {k: tuple(v.shape) for k, v in (checkpoint.get("state_dict") or {}).items()}
    shapes = _shapes({**hparams, **overrides})
    if shapes is None or shapes == saved:  # None: invalid values, which instantiation reports by field
        return
    for key, value in overrides.items():
        if _shapes({**hparams, key: value}) not in (None, saved):
            raise CheckpointError(
                f"model.init_args.{key}: {value!r} cannot be resumed from {ckpt_path}, whose weights were "
                f"trained with {hparams[key]!r} (the network's shape differs); keep {hparams[key]!r} or "
                "start a new run without --ckpt_path"
            )
    raise CheckpointError(
        f"model.init_args.{', '.join(overrides)}: together these change the network's shape; the "
        f"weights in {ckpt_path} cannot load (keep the checkpoint's values or start a new run)"
    )


def _shapes(hparams: dict[str, Any]) -> dict[str, tuple[int, ...]] | None:
    try:
        policy = instantiate_module(RLPolicy, dict(hparams))
    except Exception:  # an invalid combination: the real instantiation reports it with its field
        return None
    return {k: tuple(v.shape) for k, v in policy.state_dict().items()}
