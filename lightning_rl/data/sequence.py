"""Fixed-length sequence items with burn-in and overlap for recurrent policies (R2D2, Kapturowski 2019)."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import NestedKey, TensorDict, TensorDictBase, is_non_tensor

from lightning_rl import keys
from lightning_rl.data.fields import required_tensor
from lightning_rl.utils.checks import check_int, describe

__all__ = ["SequenceBuilder", "last_real_step", "sequence_priority"]

_FORMAT = "lightning_rl.SequenceBuilder"


class SequenceBuilder:
    """Cuts vector-env step streams into fixed-length, zero-padded sequence items, vectorized across envs.

    An item covers ``L = burn_in + seq_len`` positions of one env's episode. Positions ``[0, burn_in)``
    are burn-in context: the ``burn_in`` steps just before the training part (used to warm up a recurrent
    state, not trained on); positions ``[burn_in, L)`` are the training part. The training parts of an
    episode start at its steps ``0, stride, 2 * stride, ...`` with ``stride = seq_len - overlap``.

    Emission per :meth:`add` call (at most one item per env):

    * an env whose newest step completes a training part emits that item;
    * an env whose episode ended (``done``) and has steps no emitted training part covers emits the
      earliest training part still pending, padded at the end. It covers all those steps, so with
      ``overlap=0`` every real step of an episode is in exactly one training part (with ``overlap > 0``,
      in at least one). An episode shorter than ``seq_len`` gives one such item.

    Padding (burn-in positions before the episode's first step, positions after its last step) is zeros,
    with ``keys.MASK`` False; burn-in context never crosses into the previous episode. The steps that
    train are ``item[keys.MASK][..., burn_in:]``; it always holds at least one True.

    Items are in env order (env-major; with one item per env per call that is also oldest first).
    Emitted tensors are fresh copies, never views of the caller's inputs or of the builder's buffers.
    The builder keeps the last ``L`` steps of every env in ring buffers indexed by the global step
    counter (all envs step together, so one ring slot serves all).

    Args:
        n_envs: number of envs ``E`` in the vector env (>= 1).
        seq_len: length of the training part (>= 1).
        burn_in: number of burn-in context positions before the training part (>= 0).
        overlap: steps shared by consecutive training parts of an episode, in ``[0, seq_len)``.
    """

    def __init__(self, n_envs: int, seq_len: int, burn_in: int = 0, overlap: int = 0) -> None:
        check_int("n_envs", n_envs, 1)
        check_int("seq_len", seq_len, 1)
        check_int("burn_in", burn_in, 0)
        if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < seq_len:
            raise ValueError(f"overlap must be an int in [0, seq_len={seq_len}), got {overlap!r}")
        self.n_envs = n_envs
        self.seq_len = seq_len
        self.burn_in = burn_in
        self.overlap = overlap
        self._len = burn_in + seq_len
        self._t = 0  # global step counter; ring slot of the current step is t % L
        self._n_ep = torch.zeros(n_envs, dtype=torch.int64)  # steps of each env's current episode so far
        # (key, (L, E, *item_shape) ring buffer); empty until the first add() gives the keys and shapes.
        self._leaves: list[tuple[NestedKey, torch.Tensor]] = []
        self._pos = torch.arange(self._len)
        self._all_envs = torch.arange(n_envs)

    def reset(self, env_mask: torch.Tensor | None = None) -> None:
        """Drop pending steps of all envs, or of the envs where the ``(E,)`` bool ``env_mask`` is True.

        The next step of a reset env starts a new episode (no burn-in context from before the reset).
        """
        if env_mask is None:
            self._n_ep.zero_()
            return
        e = self.n_envs
        if not isinstance(env_mask, torch.Tensor) or env_mask.dtype != torch.bool or env_mask.shape != (e,):
            raise ValueError(
                f"env_mask must be a bool tensor of shape (n_envs={e},), got {describe(env_mask)}"
            )
        self._n_ep[env_mask.to(self._n_ep.device)] = 0

    def add(
        self, step: TensorDictBase, done: torch.Tensor, dropped: torch.Tensor | None = None
    ) -> TensorDict | None:
        """Record one vector-env step and return the sequence items it completes.

        Args:
            step: ``TensorDict`` with ``batch_size [E]``: any tensor keys of the step at time ``t``
                (``(E, *item_shape)`` each, e.g. obs, action, reward, terminated, the recurrent state the
                actor used, per-agent tensors), all on one device. Every call must have the same keys,
                per-env shapes and dtypes; ``keys.MASK`` is reserved.
            done: ``(E,)`` bool, ``terminated | truncated`` of this step (the episode ends with it).
            dropped: ``(E,)`` bool or ``None``: envs whose step failed (an env manager dropped their
                episode, see :mod:`lightning_rl.envs.manager`). Their step is not recorded, their
                episode's pending steps are discarded without an item, and their next step starts a new
                episode.

        Returns:
            ``None`` if nothing completed, else a ``TensorDict`` with ``batch_size [N, L]``: every key of
            ``step`` as ``(N, L, *item_shape)`` (zeros at padding) and ``keys.MASK`` ``(N, L)`` bool.
            :meth:`PrioritizedBuffer.extend <lightning_rl.data.replay.PrioritizedBuffer.extend>` stores them
            as they are, one item per sequence.
        """
        e, seq_len, length = self.n_envs, self.seq_len, self._len
        if not isinstance(step, TensorDictBase):
            raise ValueError(
                f"step must be a TensorDict with batch_size [n_envs={e}], got {type(step).__name__}"
            )
        if step.batch_size != (e,):
            raise ValueError(f"step must have batch_size [n_envs={e}], got {list(step.batch_size)}")
        for name, flags in (("done", done), ("dropped", dropped)):
            if flags is None and name == "dropped":
                continue
            if not isinstance(flags, torch.Tensor) or flags.dtype != torch.bool or flags.shape != (e,):
                raise ValueError(
                    f"{name} must be a bool tensor of shape (n_envs={e},), got {describe(flags)}"
                )
        if not self._leaves:
            self._allocate(step)
        values = self._step_values(step)

        g = self._t  # global index of this step
        self._t += 1
        for (_, ring), value in zip(self._leaves, values, strict=True):
            ring[g % length].copy_(value)
        done = done.to(self._n_ep.device)
        p = self._n_ep.add_(1) - 1  # (E,) episode position of this step
        q = p - (seq_len - 1)  # episode position where a training part ending at this step starts
        stride = seq_len - self.overlap
        emit = ((q >= 0) & (q % stride == 0)) | done
        if dropped is not None:
            dropped = dropped.to(self._n_ep.device)
            emit &= ~dropped
            done = done | dropped
        self._n_ep[done] = 0
        if not bool(emit.any()):
            return None
        env_idx = self._all_envs if bool(emit.all()) else emit.nonzero().squeeze(1)
        p, q = p[env_idx], q[env_idx]
        # Start of the emitted training part: ceil(q / stride) * stride is q itself for a completed part,
        # else (episode end) the earliest pending part, which starts at or before the first untrained step.
        start = (-(-q // stride) * stride).clamp_(min=0)
        episode_pos = start[:, None] - self.burn_in + self._pos  # (N, L)
        mask = (episode_pos >= 0) & (episode_pos <= p[:, None])
        slots = (episode_pos + (g - p)[:, None]) % length  # ring slot of each position's global step
        padded = not bool(mask.all())
        out = {}
        for key, ring in self._leaves:
            value = ring[slots, env_idx[:, None]]  # advanced indexing: a fresh (N, L, *item_shape) copy
            if padded:
                value[~mask] = 0
            out[key] = value
        out[keys.MASK] = mask
        return TensorDict(out, batch_size=mask.shape)

    def _allocate(self, step: TensorDictBase) -> None:
        for key, value in step.items(include_nested=True):
            if is_non_tensor(value):
                raise ValueError(f"step key {key!r} holds non-tensor data; only tensors can be recorded")
        if keys.MASK in step:
            raise ValueError(f"step must not contain the key {keys.MASK!r}: the builder adds it (keys.MASK)")
        leaf_keys = list(step.keys(include_nested=True, leaves_only=True))
        if not leaf_keys:
            raise ValueError("step has no tensor entries to record")
        devices = {step.get(k).device for k in leaf_keys}
        if len(devices) != 1:
            raise ValueError(f"all step entries must be on one device, got {sorted(map(str, devices))}")
        device = devices.pop()
        self._move_index_tensors(device)
        self._leaves = [
            (k, torch.zeros((self._len, *step.get(k).shape), dtype=step.get(k).dtype, device=device))
            for k in leaf_keys
        ]

    def _step_values(self, step: TensorDictBase) -> list[torch.Tensor]:
        values = []
        for key, ring in self._leaves:
            value = required_tensor(step, key, "step", [k for k, _ in self._leaves])
            if value.shape != ring.shape[1:] or value.dtype != ring.dtype or value.device != ring.device:
                raise ValueError(
                    f"step key {key!r} has shape {tuple(value.shape)} dtype {value.dtype} on {value.device}; "
                    f"the builder records shape {tuple(ring.shape[1:])} dtype {ring.dtype} on {ring.device}"
                )
            values.append(value)
        n_keys = len(list(step.keys(include_nested=True, leaves_only=True)))
        if n_keys != len(self._leaves):
            extra = set(step.keys(include_nested=True, leaves_only=True)) - {k for k, _ in self._leaves}
            raise ValueError(f"step has keys the builder does not record: {sorted(map(str, extra))}")
        return values

    def _move_index_tensors(self, device: torch.device) -> None:
        self._n_ep = self._n_ep.to(device)
        self._pos = self._pos.to(device)
        self._all_envs = self._all_envs.to(device)

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Pending steps and counters (tensors and primitives only)."""
        return {
            "format": _FORMAT,
            "n_envs": self.n_envs,
            "seq_len": self.seq_len,
            "burn_in": self.burn_in,
            "overlap": self.overlap,
            "t": self._t,
            "n_ep": self._n_ep.clone(),
            "leaves": [(key, ring.clone()) for key, ring in self._leaves],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; ``ValueError`` naming the field if corrupt or incompatible."""
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"sequence state must be a dict with 'format' == {_FORMAT!r}")
        e, length = self.n_envs, self._len
        for name, mine in (
            ("n_envs", e),
            ("seq_len", self.seq_len),
            ("burn_in", self.burn_in),
            ("overlap", self.overlap),
        ):
            if state.get(name) != mine:
                raise ValueError(
                    f"sequence state: {name!r} is {state.get(name)!r} but this builder has {mine}"
                )
        t = check_int("sequence state: 't'", state.get("t"), 0)
        n_ep = state.get("n_ep")
        if not isinstance(n_ep, torch.Tensor) or n_ep.dtype != torch.int64 or n_ep.shape != (e,):
            raise ValueError(f"sequence state: 'n_ep' must be an int64 tensor of shape ({e},)")
        if bool(((n_ep < 0) | (n_ep > t)).any()):
            raise ValueError(f"sequence state: 'n_ep' values must be in [0, t={t}]")
        leaves = state.get("leaves")
        if not isinstance(leaves, list):
            raise ValueError("sequence state: 'leaves' must be a list of (key, ring tensor) pairs")
        for leaf in leaves:
            ok_pair = isinstance(leaf, tuple | list) and len(leaf) == 2
            ring = leaf[1] if ok_pair else None
            if not ok_pair or not isinstance(ring, torch.Tensor) or ring.shape[:2] != (length, e):
                raise ValueError(
                    f"sequence state: each 'leaves' entry must be (key, tensor of shape ({length}, {e}, ...))"
                )
        if not leaves and bool((n_ep > 0).any()):
            raise ValueError("sequence state: 'n_ep' > 0 but no recorded 'leaves'")
        device = self._n_ep.device if not self._leaves else self._leaves[0][1].device
        self._t = t
        self._n_ep = n_ep.clone()
        self._move_index_tensors(device)
        self._leaves = [(key, ring.to(device).clone()) for key, ring in leaves]


def sequence_priority(td_error: torch.Tensor, mask: torch.Tensor, eta: float = 0.9) -> torch.Tensor:
    """R2D2's per-sequence priority ``eta * max_t |td_t| + (1 - eta) * mean_t |td_t|`` over valid steps.

    Computed on ``td_error.detach()`` (priorities are never differentiated). Every sequence must have at
    least one valid step: an all-False mask row means the wrong mask was passed (a
    :class:`SequenceBuilder` item always trains on at least one step), so it raises instead of inventing
    a priority.

    Shapes:
        td_error: (B, T) float  mask: (B, T) bool, True where a step counts (``mask[:, burn_in:]`` of items)
        returns: (B,) priority, dtype of ``td_error``
    """
    if not isinstance(td_error, torch.Tensor) or not td_error.is_floating_point() or td_error.dim() != 2:
        raise ValueError(
            f"td_error must be a floating-point tensor of shape (B, T), got {describe(td_error)}"
        )
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != td_error.shape:
        raise ValueError(
            f"mask must be a bool tensor of td_error's shape {tuple(td_error.shape)}, got {describe(mask)}"
        )
    if isinstance(eta, bool) or not isinstance(eta, int | float) or not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be a float in [0, 1], got {eta!r}")
    n_valid = mask.sum(1)
    if bool((n_valid == 0).any()):
        rows = (n_valid == 0).nonzero().squeeze(1).tolist()
        raise ValueError(f"mask must have at least one True per sequence; rows without any: {rows}")
    abs_error = td_error.detach().abs().masked_fill(~mask, 0.0)  # |td| >= 0, so 0 never wins the max
    return eta * abs_error.amax(1) + (1.0 - eta) * abs_error.sum(1) / n_valid


def last_real_step(mask: torch.Tensor) -> torch.Tensor:
    """The position of each item's last real step. Shapes: mask (N, L) bool, at least one True per row -> (N,)
    int64."""
    return mask.shape[1] - 1 - mask.flip(1).to(torch.int8).argmax(1)
