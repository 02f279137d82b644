"""Target-network updates: hard copies and Polyak averaging, buffers included.

As TorchRL's ``HardUpdate`` / ``SoftUpdate`` and SB3's ``polyak_update``: floating-point buffers (e.g.
BatchNorm's ``running_mean`` / ``running_var``) are averaged like the parameters, other buffers (e.g.
``num_batches_tracked``) are copied, so a target network's normalization statistics follow the online
network's instead of staying at their initial values.
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_rl.utils.checks import check_int, check_range

__all__ = ["hard_update", "soft_update", "TargetUpdater"]


def _split_tensors(
    target: nn.Module, source: nn.Module
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """``(target_float, source_float, target_other, source_other)``: parameters and buffers, paired in
    registration order, split into floating-point tensors (averaged) and the rest (copied)."""
    target_tensors = [*target.parameters(), *target.buffers()]
    source_tensors = [*source.parameters(), *source.buffers()]
    if len(target_tensors) != len(source_tensors):
        raise ValueError(
            f"target and source networks differ: {len(target_tensors)} vs {len(source_tensors)} "
            "parameters and buffers (the target must be a copy of the source, e.g. deepcopy(net))"
        )
    target_float, source_float, target_other, source_other = [], [], [], []
    for target_tensor, source_tensor in zip(target_tensors, source_tensors, strict=True):
        if target_tensor.shape != source_tensor.shape:
            raise ValueError(
                f"target and source networks differ: a tensor of shape {tuple(target_tensor.shape)} "
                f"faces one of shape {tuple(source_tensor.shape)}"
            )
        if target_tensor.is_floating_point():
            target_float.append(target_tensor)
            source_float.append(source_tensor)
        else:
            target_other.append(target_tensor)
            source_other.append(source_tensor)
    return target_float, source_float, target_other, source_other


@torch.no_grad()
def hard_update(target: nn.Module, source: nn.Module) -> None:
    """Copy ``source`` into ``target``: ``target.load_state_dict(source.state_dict())`` (parameters and
    persistent buffers, in place, so a frozen target stays frozen)."""
    target.load_state_dict(source.state_dict())


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``target <- (1 - tau) * target + tau * source``, in place.

    Applies to every parameter and floating-point buffer (``torch._foreach_lerp_``, one fused call);
    integer and bool buffers are copied. ``tau = 1`` copies the floating-point tensors exactly.
    """
    check_range("tau", tau, 0.0, 1.0, low_open=True)
    target_float, source_float, target_other, source_other = _split_tensors(target, source)
    if target_float:
        torch._foreach_lerp_(target_float, source_float, tau)
    for target_tensor, source_tensor in zip(target_other, source_other, strict=True):
        target_tensor.copy_(source_tensor)


class TargetUpdater:
    """Keeps a target network in step with its online network, one call per gradient update.

    ``tau < 1``: Polyak averaging (:func:`soft_update`) at every update. ``tau == 1``: a hard copy
    (:func:`hard_update`) every ``interval`` updates, i.e. when ``train_iter % interval == 0``.

    Args:
        target: the target network (usually ``deepcopy(source).requires_grad_(False)``).
        source: the online network.
        tau: Polyak factor in (0, 1].
        interval: updates between hard copies (used when ``tau == 1``), >= 1.
    """

    def __init__(self, target: nn.Module, source: nn.Module, tau: float = 1.0, interval: int = 1) -> None:
        check_range("tau", tau, 0.0, 1.0, low_open=True)
        self.interval = check_int("interval", interval, 1)
        _split_tensors(target, source)  # fail here, not at the first update, on mismatched networks
        self.target, self.source, self.tau = target, source, tau

    def step(self, train_iter: int) -> None:
        """After gradient update number ``train_iter`` (counted from 1)."""
        if self.tau < 1.0:
            soft_update(self.target, self.source, self.tau)
        elif train_iter % self.interval == 0:
            hard_update(self.target, self.source)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tau={self.tau}, interval={self.interval})"
