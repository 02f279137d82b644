"""Recurrent Q-network (nerveX's FCDRQN / ConvDRQN in one class): encoder -> LSTM -> Q head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lightning_rl.models.heads import DuelingHead, QHead
from lightning_rl.torch_utils.network import make_encoder

__all__ = ["DRQN"]


class DRQN(nn.Module):
    """Encoder chosen from the observation shape (MLP or Nature CNN) -> one LSTM layer -> plain or
    dueling Q head (Hausknecht & Stone 2015; R2D2's network, Kapturowski et al. 2019).

    The recurrent state is ``(B, 2, lstm_size)``: the LSTM's ``h`` and ``c`` stacked, zeros at an
    episode's start (:meth:`initial_state`). Sequences are batch-first, as the replay stores them.

    Args:
        obs_shape, n_actions: the env's.
        hidden_sizes: encoder widths (for images the last is the CNN's feature width).
        lstm_size: the LSTM's hidden width.
        dueling: dueling head.
        head_hidden_size: a hidden layer of this width in each head stream (0: none).
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        n_actions: int,
        hidden_sizes: Sequence[int] = (256,),
        lstm_size: int = 256,
        dueling: bool = True,
        head_hidden_size: int = 0,
    ):
        super().__init__()
        if n_actions < 1 or lstm_size < 1:
            raise ValueError(f"n_actions and lstm_size must be >= 1, got {n_actions} and {lstm_size}")
        self.encoder = make_encoder(obs_shape, hidden_sizes)
        self.lstm = nn.LSTM(self.encoder.out_dim, lstm_size, batch_first=True)
        head = DuelingHead if dueling else QHead
        self.head = head(lstm_size, n_actions, head_hidden_size)
        self.lstm_size = lstm_size

    def initial_state(self, n: int) -> Tensor:
        """Zeros ``(n, 2, lstm_size)`` on the network's device."""
        weight = self.lstm.weight_hh_l0
        return torch.zeros(n, 2, self.lstm_size, device=weight.device, dtype=weight.dtype)

    def forward(self, obs: Tensor, state: Tensor, reset: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Unroll over ``T`` steps from ``state``; where ``reset[b, t]`` is True the state of row ``b`` is
        zeroed before step ``t`` (an episode starts there). One LSTM call per stretch without resets.

        Shapes: obs (B, T, *obs_shape), state (B, 2, H), reset (B, T) bool or None
            -> q (B, T, n_actions), state after the last step (B, 2, H)
        """
        batch, time = obs.shape[:2]
        features = self.encoder(obs.flatten(0, 1)).unflatten(0, (batch, time))
        h, c = state[:, 0].unsqueeze(0).contiguous(), state[:, 1].unsqueeze(0).contiguous()
        cuts = [] if reset is None else reset.any(0).nonzero().squeeze(1).tolist()
        outputs, start = [], 0
        for cut in [*cuts, time]:
            if cut > start:
                out, (h, c) = self.lstm(features[:, start:cut], (h, c))
                outputs.append(out)
            if cut < time:
                keep = (~reset[:, cut]).to(h.dtype)[None, :, None]
                h, c = h * keep, c * keep
            start = cut
        out = outputs[0] if len(outputs) == 1 else torch.cat(outputs, 1)
        q = self.head(out.flatten(0, 1)).unflatten(0, (batch, time))
        return q, torch.stack((h[0], c[0]), 1)

    def step(self, obs: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One step of ``B`` envs. Shapes: obs (B, *obs_shape), state (B, 2, H) -> q (B, A), state."""
        q, state = self(obs.unsqueeze(1), state)
        return q.squeeze(1), state
