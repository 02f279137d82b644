"""``lightning-rl export``: the acting part of a trained policy as TorchScript or ONNX, for deployment.

    lightning-rl export --ckpt_path runs/csv/version_0/checkpoints/best.ckpt --format onnx [--out policy.onnx]

What is exported is the policy's deterministic action (``act(obs, mode="eval")``: DQN's greedy action,
PPO's most likely action or Gaussian mean, SAC's squashed mean, ...) from a batch of observations, with
the DataModule's observation normalization (on-policy ``normalize_obs``: the checkpoint's running mean and
variance, and its clip) folded in, so the exported model takes raw observations. A recurrent policy (R2D2,
QMIX, IQL) takes its state as an explicit input and returns the next one: ``(obs, state) -> (action,
state)``, the first state from ``initial_state`` (zeros, shape in the JSON). Beside the model, a JSON file
names the inputs and outputs with their shapes and dtypes, the env spec and the checkpoint.

Tensor shapes: ``obs (B, *obs_shape)`` float32 (uint8 for image observations, as the env gives them);
``action (B,)`` int64 (discrete) or ``(B, *action_shape)`` float32; multi-agent policies take the packed
observation of the whole team and return every agent's action, as in training; ``state (B,
*state_shape)``.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lightning_rl.contract import RecurrentActor
from lightning_rl.data.normalizer import RunningMeanStd, standardize
from lightning_rl.errors import ReportedError
from lightning_rl.utils.checks import ConfigError

__all__ = ["FORMATS", "ExportedActor", "ExportedRecurrentActor", "export_policy", "load_policy", "main"]

FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


class _Normalizer(nn.Module):
    """The on-policy DataModule's :func:`~lightning_rl.data.normalizer.standardize` with the checkpoint's
    statistics (traced into the exported model as constants); the identity when there are none."""

    def __init__(self, stats: dict[str, Any] | None, clip: float | None):
        super().__init__()
        self.enabled = stats is not None
        self.stats: RunningMeanStd | None = None
        if stats is not None:
            self.stats = RunningMeanStd(tuple(stats["mean"].shape))
            self.stats.load_state_dict(stats)
        self.clip = clip

    def forward(self, obs: Tensor) -> Tensor:
        return standardize(obs, self.stats, self.clip)


class ExportedActor(nn.Module):
    """``obs (B, *obs_shape) -> action``: the policy's ``act(obs, mode="eval")`` after the normalizer.

    The policy's networks are registered as submodules (so tracing sees their weights); the policy itself
    is kept outside the module tree: a LightningModule's properties ask for a Trainer."""

    def __init__(self, policy: nn.Module, normalizer: _Normalizer):
        super().__init__()
        self.normalizer = normalizer
        self.networks = nn.ModuleDict(dict(policy.named_children()))
        object.__setattr__(self, "_policy", policy)

    def forward(self, obs: Tensor) -> Tensor:
        return self._policy.act(self.normalizer(obs), mode="eval")


class ExportedRecurrentActor(ExportedActor):
    """``(obs (B, *obs_shape), state (B, *state_shape)) -> (action, next state)``: ``act_recurrent``."""

    def forward(self, obs: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        return self._policy.act_recurrent(self.normalizer(obs), state, "eval")


def load_policy(ckpt_path: str | Path) -> tuple[nn.Module, _Normalizer, dict[str, Any]]:
    """The checkpoint's policy (its class from the checkpoint's hyperparameters, weights loaded, in eval
    mode), its observation normalizer and the checkpoint itself."""
    from lightning_rl.resume import _resolve
    from lightning_rl.utils.integrity import load_torch_file

    checkpoint = load_torch_file(str(ckpt_path))
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    class_path = hparams.pop("_class_path", None)
    hparams.pop("_instantiator", None)
    if class_path is None:
        raise ConfigError(f"--ckpt_path: {ckpt_path} holds no lightning_rl policy (no _class_path)")
    policy_class = _resolve(class_path)
    if not isinstance(policy_class, type):
        raise ConfigError(f"--ckpt_path: {ckpt_path} holds a {class_path}, which does not import here")
    policy = policy_class(**hparams)
    policy.load_state_dict(checkpoint["state_dict"])
    policy.eval()
    data_hparams = checkpoint.get("datamodule_hyper_parameters") or {}
    data_state = next(
        (v for k, v in checkpoint.items() if k.endswith("DataModule") and isinstance(v, dict)), {}
    )
    stats = data_state.get("obs_stats")
    normalizer = _Normalizer(stats, data_hparams.get("clip_obs") if stats is not None else None)
    return policy, normalizer, checkpoint


def export_policy(ckpt_path: str | Path, fmt: str, out: str | Path | None = None) -> tuple[Path, Path]:
    """Write the acting module of the checkpoint's policy in ``fmt`` (``onnx`` or ``torchscript``) to
    ``out`` (default: beside the checkpoint, its name with ``.onnx`` / ``.pt``) and its description to
    ``<out>.json``; returns both paths."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format: got {fmt!r}; allowed: {', '.join(map(repr, FORMATS))}")
    policy, normalizer, checkpoint = load_policy(ckpt_path)
    spec = policy.spec
    out = Path(out) if out is not None else Path(ckpt_path).with_suffix(SUFFIX[fmt])
    obs = torch.zeros(1, *spec.obs_shape, dtype=getattr(torch, spec.obs_dtype))
    recurrent = isinstance(policy, RecurrentActor)
    module = (ExportedRecurrentActor if recurrent else ExportedActor)(policy, normalizer).eval()
    module.requires_grad_(False)  # inference only: outputs without autograd history
    inputs: tuple[Tensor, ...] = (obs, policy.initial_state(1)) if recurrent else (obs,)
    names = (["obs", "state"], ["action", "next_state"]) if recurrent else (["obs"], ["action"])
    with torch.no_grad():
        outputs = module(*inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # torch 2.14 marks both exporters deprecated; they are what runs here
        warnings.simplefilter("ignore")
        if fmt == "torchscript":
            torch.jit.save(torch.jit.trace(module, inputs), str(out))
        else:
            batch = {name: {0: "batch"} for name in names[0] + names[1]}
            torch.onnx.export(
                module,
                inputs,
                str(out),
                input_names=names[0],
                output_names=names[1],
                dynamic_axes=batch,
                dynamo=False,
            )
    description = {
        "format": fmt,
        "policy": type(policy).__module__ + "." + type(policy).__qualname__,
        "checkpoint": str(Path(ckpt_path).resolve()),
        "train_iter": checkpoint.get("train_iter"),
        "inputs": {n: _tensor_info(t) for n, t in zip(names[0], inputs, strict=True)},
        "outputs": {n: _tensor_info(t) for n, t in zip(names[1], outputs, strict=True)},
        "obs_normalization": normalizer.enabled,
        "env_spec": spec.to_dict(),
    }
    described = out.with_name(out.name + ".json")
    described.write_text(json.dumps(description, indent=2) + "\n")
    return out, described


def _tensor_info(tensor: Tensor) -> dict[str, Any]:
    """Shape with the batch dim as -1, and the dtype name."""
    return {"shape": [-1, *tensor.shape[1:]], "dtype": str(tensor.dtype).removeprefix("torch.")}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="lightning-rl export", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", required=True, help="a lightning_rl checkpoint (best.ckpt, last.ckpt)")
    parser.add_argument("--format", required=True, help=f"one of {', '.join(FORMATS)}")
    parser.add_argument("--out", type=Path, help="the model file (default: beside the checkpoint)")
    args = parser.parse_args(argv)
    if not Path(args.ckpt_path).is_file():
        raise ConfigError(f"--ckpt_path: {args.ckpt_path} is not a file")
    try:
        model, description = export_policy(args.ckpt_path, args.format, args.out)
    except ImportError as err:
        raise ReportedError(
            f"{args.format} export needs {err.name}: pip install 'lightning-rl[export]'"
        ) from None
    print(f"exported {model} (described in {description})")
