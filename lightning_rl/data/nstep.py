"""Vectorized n-step transition building from a stream of vector-env steps."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from lightning_rl import keys
from lightning_rl.data._torchrl_compat import new_flat_tensordict
from lightning_rl.utils.checks import check_int

__all__ = ["NStepTransitionBuilder"]

_FORMAT = "lightning_rl.NStepTransitionBuilder"


def _concat(first: TensorDictBase | None, second: TensorDictBase | None) -> TensorDictBase | None:
    if first is None or second is None:
        return second if first is None else first
    return torch.cat([first, second])


class NStepTransitionBuilder:
    """Turns vector-env steps into n-step transitions, vectorized across envs.

    Keeps, per env, the last ``< nstep`` steps whose windows are not complete yet, in ring buffers
    indexed by the global step counter (all envs step together, so one ring position serves all).

    Emission per :meth:`add` call:

    * an env that did not end its episode and has ``nstep`` pending steps emits its oldest window
      (``STEPS == nstep``, ``TERMINATED`` False);
    * an env whose episode ended (``terminated | truncated``) emits all its pending windows, with
      ``STEPS`` = ``k..1`` for its ``k`` pending steps, all sharing the final ``NEXT_OBS``;
      ``TERMINATED`` is the env's ``terminated`` flag (a truncated episode bootstraps).

    Order of the emitted items: by env index, then by start time (oldest first). With ``nstep=1``
    every env emits exactly one transition per step, in env order. Emitted tensors are fresh copies,
    never views of the caller's inputs (env buffers may be reused in place).

    Args:
        n_envs: number of envs ``E`` in the vector env.
        nstep: window length ``n`` (>= 1).
    """

    def __init__(self, n_envs: int, nstep: int = 1) -> None:
        check_int("n_envs", n_envs, 1)
        check_int("nstep", nstep, 1)
        self.n_envs = n_envs
        self.nstep = nstep
        self._t = 0  # global step counter; ring slot of the current step is t % nstep
        self._count = torch.zeros(n_envs, dtype=torch.int64)  # pending steps per env, 0..nstep-1
        self._obs: torch.Tensor | None = None  # (nstep, E, *obs_shape)
        self._action: torch.Tensor | None = None  # (nstep, E, *action_shape)
        self._reward: torch.Tensor | None = None  # (nstep, E) float32
        # Column j of the emission mask is the window starting j - (nstep - 1) steps before now
        # ("age" nstep-1-j), so nonzero() yields env-major, oldest-first order.
        self._age = torch.arange(nstep - 1, -1, -1)
        self._k = torch.arange(nstep)
        self._all_envs = torch.arange(n_envs)
        # _ring_order[s]: ring slots in time order for a window whose oldest step sits in slot s.
        self._ring_order = (torch.arange(nstep)[:, None] + torch.arange(nstep)) % nstep

    def pending(self) -> torch.Tensor:
        """``(E,)`` int64 number of steps per env not yet emitted (copy)."""
        return self._count.clone()

    def reset(self, env_mask: torch.Tensor | None = None) -> None:
        """Drop pending steps of all envs, or of the envs where the ``(E,)`` bool ``env_mask`` is True."""
        if env_mask is None:
            self._count.zero_()
        else:
            mask = torch.as_tensor(env_mask, dtype=torch.bool, device=self._count.device)
            if mask.shape != (self.n_envs,):
                raise ValueError(f"env_mask must have shape ({self.n_envs},), got {tuple(mask.shape)}")
            self._count[mask] = 0

    def add(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        next_obs: torch.Tensor,
        dropped: torch.Tensor | None = None,
    ) -> TensorDictBase | None:
        """Record one vector-env step and return the transitions it completes.

        Args:
            obs: ``(E, *obs_shape)`` observation at ``t``.
            action: ``(E,)`` or ``(E, act_dim)`` action taken at ``t``.
            reward: ``(E,)`` reward ``r_t``.
            terminated, truncated: ``(E,)`` bool episode-end flags of this step.
            next_obs: ``(E, *obs_shape)`` TRUE next observation (the final observation where the
                episode ended, not the autoreset one).
            dropped: ``(E,)`` bool, envs whose step failed (an env manager's ``info["dropped"]``): their
                step is no transition; their pending windows end one step earlier, truncated, and
                bootstrap from ``obs`` (the last observation the env really reached).

        Returns:
            ``None`` if nothing completed, else a ``TensorDict`` with ``batch_size [M]``:
            ``OBS`` ``(M, *obs_shape)``, ``ACTION``, ``REWARD`` ``(M, nstep)`` float32 (zero-padded
            after ``STEPS`` rewards), ``NEXT_OBS`` ``(M, *obs_shape)``, ``TERMINATED`` ``(M,)`` bool,
            ``STEPS`` ``(M,)`` int64 in ``1..nstep``.
        """
        e, n = self.n_envs, self.nstep
        obs = torch.as_tensor(obs)
        next_obs = torch.as_tensor(next_obs)
        action = torch.as_tensor(action)
        reward = torch.as_tensor(reward)
        terminated = torch.as_tensor(terminated)
        truncated = torch.as_tensor(truncated)
        if obs.dim() == 0 or obs.shape[0] != e:
            raise ValueError(f"obs must have shape (n_envs={e}, *obs_shape), got {tuple(obs.shape)}")
        if next_obs.shape != obs.shape:
            raise ValueError(
                f"next_obs must have the shape of obs {tuple(obs.shape)}, got {tuple(next_obs.shape)}"
            )
        if action.dim() == 0 or action.shape[0] != e:
            raise ValueError(
                f"action must have shape (n_envs={e},) or (n_envs, act_dim), got {tuple(action.shape)}"
            )
        for name, value in (("reward", reward), ("terminated", terminated), ("truncated", truncated)):
            if value.shape != (e,):
                raise ValueError(f"{name} must have shape (n_envs={e},), got {tuple(value.shape)}")
        if self._obs is None:
            self._allocate(obs, action)
        assert self._obs is not None and self._action is not None and self._reward is not None
        if obs.shape[1:] != self._obs.shape[2:]:
            raise ValueError(
                f"obs per-env shape changed from {tuple(self._obs.shape[2:])} to {tuple(obs.shape[1:])}"
            )
        if action.shape[1:] != self._action.shape[2:]:
            raise ValueError(
                f"action per-env shape changed from {tuple(self._action.shape[2:])} "
                f"to {tuple(action.shape[1:])}"
            )

        device = self._count.device
        flushed = None
        if dropped is not None:
            dropped = torch.as_tensor(dropped, dtype=torch.bool).to(device)
            if dropped.shape != (e,):
                raise ValueError(f"dropped must have shape (n_envs={e},), got {tuple(dropped.shape)}")
            if bool(dropped.any()):
                flushed = self._flush(dropped, obs.to(device=device, dtype=self._obs.dtype))
            else:
                dropped = None
        slot = self._t % n
        self._t += 1
        terminated = terminated.to(device, torch.bool)
        done = terminated | truncated.to(device, torch.bool)
        if dropped is not None:
            done &= ~dropped
        next_obs = next_obs.to(device=device, dtype=self._obs.dtype)
        # Emitted tensors never alias the caller's (env buffers may be reused in place): copy=True.
        if n == 1:  # every step is a complete window: no ring buffer needed
            out = self._emit(
                obs.to(device=device, dtype=self._obs.dtype, copy=True),
                action.to(device=device, dtype=self._action.dtype, copy=True),
                reward.to(device=device, dtype=torch.float32).unsqueeze(1),
                next_obs.clone(),
                terminated,
                torch.ones(e, dtype=torch.int64, device=device),
            )
            return out if dropped is None else out[~dropped]
        self._obs.select(0, slot).copy_(obs)
        self._action.select(0, slot).copy_(action)
        self._reward.select(0, slot).copy_(reward)
        count = self._count.add_(1)  # <= n: full windows were emitted on the previous step
        if dropped is not None:
            count[dropped] = 0  # a failed step starts no window

        if not bool(done.any()):
            # Common path: only envs with n pending steps emit their oldest (full) window; its ring
            # slots are the same for all envs, so plain index_selects do it.
            full = count == n
            if not bool(full.any()):
                return flushed
            count.clamp_(max=n - 1)
            env_idx = self._all_envs if bool(full.all()) else full.nonzero().squeeze(1)
            oldest = (slot + 1) % n
            m = env_idx.shape[0]
            return _concat(
                flushed,
                self._emit(
                    self._obs[oldest].index_select(0, env_idx),
                    self._action[oldest].index_select(0, env_idx),
                    self._reward.index_select(0, self._ring_order[oldest]).t().index_select(0, env_idx),
                    next_obs.index_select(0, env_idx) if m != e else next_obs.clone(),
                    torch.zeros(m, dtype=torch.bool, device=device),
                    torch.full((m,), n, dtype=torch.int64, device=device),
                ),
            )

        # Some episode ended. emit[env, j]: the window of age age[j] exists and is either full or
        # flushed by the episode end.
        emit = (self._age < count[:, None]) & (done[:, None] | (self._age == n - 1))
        count[done] = 0
        count.clamp_(max=n - 1)
        return _concat(flushed, self._emit_windows(emit, slot, next_obs, terminated))

    def _flush(self, env_mask: torch.Tensor, bootstrap_obs: torch.Tensor) -> TensorDictBase | None:
        """Emit the pending windows of the ``(E,)`` ``env_mask`` envs as truncated at the last step,
        bootstrapping from their rows of ``bootstrap_obs`` ``(E, *obs_shape)``; they have none left."""
        emit = (self._age < self._count[:, None]) & env_mask[:, None]
        self._count[env_mask] = 0
        no_terminal = torch.zeros(self.n_envs, dtype=torch.bool, device=env_mask.device)
        return self._emit_windows(emit, (self._t - 1) % self.nstep, bootstrap_obs, no_terminal)

    def _emit_windows(
        self, emit: torch.Tensor, slot: int, next_obs: torch.Tensor, terminated: torch.Tensor
    ) -> TensorDictBase | None:
        """The windows ``emit[env, j]`` (age ``age[j]`` steps before ``slot``), or None if there are none."""
        env_idx, col = emit.nonzero(as_tuple=True)
        if env_idx.numel() == 0:
            return None
        n = self.nstep
        age = self._age[col]
        start = (slot - age) % n
        k = self._k
        reward_slots = (start[:, None] + k) % n  # (M, n) ring slots r_t..r_{t+n-1}
        rewards = self._reward[reward_slots, env_idx[:, None]]
        rewards = torch.where(k <= age[:, None], rewards, torch.zeros((), dtype=rewards.dtype))
        return self._emit(
            self._obs[start, env_idx],
            self._action[start, env_idx],
            rewards,
            next_obs.index_select(0, env_idx),
            terminated[env_idx],
            age + 1,
        )

    def _emit(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
        steps: torch.Tensor,
    ) -> TensorDictBase:
        out = {
            keys.OBS: obs,
            keys.ACTION: action,
            keys.REWARD: reward,
            keys.NEXT_OBS: next_obs,
            keys.TERMINATED: terminated,
            keys.STEPS: steps,
        }
        return new_flat_tensordict(out, torch.Size([obs.shape[0]]))

    def _allocate(self, obs: torch.Tensor, action: torch.Tensor) -> None:
        n, device = self.nstep, obs.device
        self._move_index_tensors(device)
        self._obs = torch.zeros((n, *obs.shape), dtype=obs.dtype, device=device)
        self._action = torch.zeros((n, *action.shape), dtype=action.dtype, device=device)
        self._reward = torch.zeros((n, self.n_envs), dtype=torch.float32, device=device)

    def _move_index_tensors(self, device: torch.device) -> None:
        self._count = self._count.to(device)
        self._age = self._age.to(device)
        self._k = self._k.to(device)
        self._all_envs = self._all_envs.to(device)
        self._ring_order = self._ring_order.to(device)

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Pending windows and counters (tensors and primitives only)."""
        return {
            "format": _FORMAT,
            "n_envs": self.n_envs,
            "nstep": self.nstep,
            "t": self._t,
            "count": self._count.clone(),
            "obs": None if self._obs is None else self._obs.clone(),
            "action": None if self._action is None else self._action.clone(),
            "reward": None if self._reward is None else self._reward.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; ``ValueError`` naming the field if corrupt or incompatible."""
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"n-step state must be a dict with 'format' == {_FORMAT!r}")
        e, n = self.n_envs, self.nstep
        for name, mine in (("n_envs", e), ("nstep", n)):
            if state.get(name) != mine:
                raise ValueError(f"n-step state: {name!r} is {state.get(name)!r} but this builder has {mine}")
        t = check_int("n-step state: 't'", state.get("t"), 0)
        count = state.get("count")
        if not isinstance(count, torch.Tensor) or count.dtype != torch.int64 or count.shape != (e,):
            raise ValueError(f"n-step state: 'count' must be an int64 tensor of shape ({e},)")
        if bool(((count < 0) | (count >= n)).any()):
            raise ValueError(f"n-step state: 'count' values must be in [0, {n - 1}]")
        bufs = [state.get(name) for name in ("obs", "action", "reward")]
        if all(b is None for b in bufs):
            if bool((count > 0).any()):
                raise ValueError("n-step state: 'count' > 0 but no pending 'obs'/'action'/'reward'")
        else:
            for name, value in zip(("obs", "action", "reward"), bufs, strict=True):
                if not isinstance(value, torch.Tensor) or value.dim() < 2 or value.shape[:2] != (n, e):
                    raise ValueError(f"n-step state: {name!r} must be a tensor of shape ({n}, {e}, ...)")
            if bufs[2].shape != (n, e) or bufs[2].dtype != torch.float32:
                raise ValueError(f"n-step state: 'reward' must be a float32 tensor of shape ({n}, {e})")
        device = self._count.device if self._obs is None else self._obs.device
        self._t = t
        self._count = count.clone()
        self._move_index_tensors(device)
        if bufs[0] is None:
            self._obs = self._action = self._reward = None
        else:
            self._obs, self._action, self._reward = (b.to(device).clone() for b in bufs)
