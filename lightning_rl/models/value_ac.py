"""Actor-critic network for PPO / A2C / IMPALA (nerveX / DI-engine's ``ValueAC``).

An observation encoder chosen from the observation shape (MLP for ``(D,)``, Nature CNN for
``(C, H, W)``; or, with ``encoder="board_cnn"``, convolutions over a board game's planes), shared by both
heads or one per head, a policy head that parameterizes an action distribution
(`lightning_rl.models.distributions`) and a scalar value head.

Shapes. ``obs`` is ``(*B, *obs_shape)`` with any number of leading batch dims ``*B`` (``(B,)`` for
collection, ``(T, B)`` for IMPALA unrolls); every output keeps them:

- value, log-prob, entropy: ``(*B)`` float.
- discrete action: ``(*B)`` int64; continuous action: ``(*B, *action_shape)`` float.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lightning_rl.models.distributions import ActionDist, CategoricalDist, DiagGaussian, SquashedDiagGaussian
from lightning_rl.spec import EnvSpec
from lightning_rl.torch_utils.masking import mask_illegal, split_action_mask
from lightning_rl.torch_utils.network import BoardCNNEncoder, MLPEncoder, make_encoder, orthogonal_init_
from lightning_rl.utils.checks import ConfigError

_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}
_LOG_STD_MODES = ("independent", "state_dependent")
ENCODERS = ("auto", "board_cnn")
Encoder = Literal["auto", "board_cnn"]

# Orthogonal-init gains of CleanRL / SB3 PPO.
HIDDEN_GAIN = math.sqrt(2.0)
POLICY_GAIN = 0.01
VALUE_GAIN = 1.0


def _as_bound(name: str, value: Any, action_shape: tuple[int, ...]) -> Tensor:
    bound = torch.as_tensor(value, dtype=torch.float32).flatten()
    n = math.prod(action_shape)
    if bound.numel() == 1:
        bound = bound.expand(n)
    if bound.numel() != n:
        raise ValueError(
            f"{name} must be a scalar or have {n} values (action_shape {action_shape}), got {bound.numel()}"
        )
    if not torch.isfinite(bound).all():
        raise ValueError(f"{name} must be finite to squash actions, got {bound.tolist()}")
    return bound.reshape(action_shape).clone()


class ValueAC(nn.Module):
    """Actor-critic: ``obs -> (action distribution, value)``.

    Args:
        obs_shape: one observation's shape, ``(D,)`` or ``(C, H, W)``.
        action_type: ``"discrete"`` (categorical head on logits) or ``"continuous"`` (diagonal Gaussian).
        n_actions: number of discrete actions (discrete only, >= 1).
        action_shape: shape of one continuous action (continuous only, non-empty), e.g. ``(6,)``.
        hidden_sizes: MLP widths for vector obs; for images ``hidden_sizes[-1]`` is the CNN's feature
            width. ``None``: ``(64, 64)`` for vectors, ``(512,)`` for images.
        shared_encoder: one encoder feeding both heads (``True``) or separate actor and critic encoders
            (``False``). ``None``: shared for images (Atari PPO), separate for vectors (MuJoCo PPO).
        activation: MLP activation, ``"tanh"`` (PPO default) or ``"relu"``. The CNN always uses ReLU.
        log_std: continuous only. ``"independent"``: a learned per-dim parameter that does not depend
            on the observation; ``"state_dependent"``: a linear head on the actor features.
            Either is clamped to ``log_std_bounds``.
        log_std_init: initial log-std (the parameter's value, or the state-dependent head's bias).
        log_std_bounds: ``(min, max)`` clamp of the log-std.
        squash: continuous only. Squash samples with ``tanh`` and rescale them to
            ``[action_low, action_high]`` (requires both bounds). Without squashing, actions are
            unbounded Gaussian samples: the env wrapper / DataModule clips them to the bounds when
            stepping, while log-probs are of the unclipped sample, which is what should be stored.
        action_low, action_high: action bounds (scalar or one per action element); used only to squash.
        orthogonal_init: orthogonal weights, zero biases; gain sqrt(2) in the encoders, 0.01 in the
            policy head (and the state-dependent log-std head), 1.0 in the value head.
        action_mask: discrete vector observations only: their last ``n_actions`` features are the
            legal-action mask (``EnvSpec.action_mask``). The encoders see the features before it, and an
            illegal action gets probability 0 (a masked categorical).
        encoder: ``"auto"`` (from the observation shape, as above) or ``"board_cnn"``: 3x3 convolutions
            over ``board_shape`` (the features before the mask, row-major ``(H, W, C)``), then the MLP
            ``hidden_sizes`` (:class:`~lightning_rl.torch_utils.BoardCNNEncoder`).
        board_shape: a board game's planes (``EnvSpec.board_shape``, which ``from_spec`` passes).

    Attributes: ``actor_encoder`` / ``critic_encoder`` (when shared, both are aliases of the one
    registered ``encoder``, so the state dict holds it once), ``policy_head`` (logits or mean),
    ``log_std`` (parameter) or ``log_std_head`` (continuous), ``value_head``.
    """

    def __getattr__(self, name: str) -> Any:
        if name in ("actor_encoder", "critic_encoder") and "encoder" in self._modules:
            return self._modules["encoder"]
        return super().__getattr__(name)

    def __init__(
        self,
        obs_shape: Sequence[int],
        action_type: Literal["discrete", "continuous"],
        n_actions: int = 0,
        action_shape: Sequence[int] = (),
        hidden_sizes: Sequence[int] | None = None,
        shared_encoder: bool | None = None,
        activation: Literal["tanh", "relu"] = "tanh",
        log_std: Literal["independent", "state_dependent"] = "independent",
        log_std_init: float = 0.0,
        log_std_bounds: Sequence[float] = (-20.0, 2.0),
        squash: bool = False,
        action_low: float | Sequence[float] | None = None,
        action_high: float | Sequence[float] | None = None,
        orthogonal_init: bool = True,
        action_mask: bool = False,
        encoder: Encoder = "auto",
        board_shape: Sequence[int] = (),
    ):
        super().__init__()
        self.obs_shape = tuple(int(d) for d in obs_shape)
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {list(ENCODERS)}, got {encoder!r}")
        if encoder == "board_cnn" and not board_shape:
            problem = "'board_cnn' needs a board game's (H, W, C) planes (EnvSpec.board_shape); none here"
            raise ConfigError(f"encoder: {problem}", "encoder", problem, "'auto'")
        if action_mask and (action_type != "discrete" or len(self.obs_shape) != 1):
            raise ValueError(
                "action_mask needs discrete actions and vector observations (features, then the mask)"
            )
        self.action_mask = bool(action_mask)
        self.action_shape = tuple(int(d) for d in action_shape)
        if action_type not in ("discrete", "continuous"):
            raise ValueError(f"action_type must be 'discrete' or 'continuous', got {action_type!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if action_type == "discrete":
            if n_actions < 1:
                raise ValueError(f"n_actions must be >= 1 for discrete actions, got {n_actions}")
            if squash:
                raise ValueError("squash applies to continuous actions only; got squash=True for discrete")
        else:
            if not self.action_shape or any(d < 1 for d in self.action_shape):
                raise ValueError(
                    f"action_shape must be a non-empty shape of positive dims for continuous actions, "
                    f"got {self.action_shape}"
                )
            if log_std not in _LOG_STD_MODES:
                raise ValueError(f"log_std must be one of {list(_LOG_STD_MODES)}, got {log_std!r}")
            if len(log_std_bounds) != 2 or not log_std_bounds[0] < log_std_bounds[1]:
                raise ValueError(f"log_std_bounds must be (min, max) with min < max, got {log_std_bounds}")
        self.action_type = action_type
        self.n_actions = int(n_actions) if action_type == "discrete" else 0
        self.action_dim = self.n_actions if action_type == "discrete" else math.prod(self.action_shape)
        self.log_std_mode = log_std if action_type == "continuous" else None
        self.log_std_bounds = (float(log_std_bounds[0]), float(log_std_bounds[1]))
        self.squash = bool(squash)

        is_image = len(self.obs_shape) == 3
        if hidden_sizes is None:
            hidden_sizes = (512,) if is_image else (64, 64)
        self.shared_encoder = is_image if shared_encoder is None else bool(shared_encoder)

        def make() -> nn.Module:
            if encoder == "board_cnn":
                return BoardCNNEncoder(board_shape, hidden_sizes, activation=_ACTIVATIONS[activation])
            if len(self.obs_shape) == 1:
                n_in = self.obs_shape[0] - (self.n_actions if self.action_mask else 0)
                return MLPEncoder(n_in, hidden_sizes, _ACTIVATIONS[activation])
            return make_encoder(self.obs_shape, hidden_sizes)  # CNN, or a ValueError naming obs_shape

        if self.shared_encoder:
            self.encoder = make()  # also reachable as actor_encoder / critic_encoder (__getattr__)
        else:
            self.actor_encoder = make()
            self.critic_encoder = make()
        feat = self.actor_encoder.out_dim

        self.policy_head = nn.Linear(feat, self.action_dim)  # logits or Gaussian mean
        self.log_std_head: nn.Linear | None = None
        self.log_std: nn.Parameter | None = None
        if self.log_std_mode == "state_dependent":
            self.log_std_head = nn.Linear(feat, self.action_dim)
            nn.init.constant_(self.log_std_head.bias, log_std_init)
        elif self.log_std_mode == "independent":
            self.log_std = nn.Parameter(torch.full((self.action_dim,), float(log_std_init)))
        self.value_head = nn.Linear(self.critic_encoder.out_dim, 1)

        if self.squash:
            if action_low is None or action_high is None:
                raise ValueError("squash=True requires both action_low and action_high")
            low = _as_bound("action_low", action_low, self.action_shape)
            high = _as_bound("action_high", action_high, self.action_shape)
            if not (low < high).all():
                raise ValueError(f"action_low must be < action_high, got {low.tolist()} and {high.tolist()}")
            # Derived from constructor arguments, so kept out of the state dict.
            self.register_buffer("action_low", low, persistent=False)
            self.register_buffer("action_high", high, persistent=False)

        if orthogonal_init:
            orthogonal_init_(self.actor_encoder, HIDDEN_GAIN)
            if not self.shared_encoder:
                orthogonal_init_(self.critic_encoder, HIDDEN_GAIN)
            orthogonal_init_(self.policy_head, POLICY_GAIN)
            if self.log_std_head is not None:
                orthogonal_init_(self.log_std_head, POLICY_GAIN, bias=log_std_init)
            orthogonal_init_(self.value_head, VALUE_GAIN)

    @classmethod
    def from_spec(cls, env_spec: EnvSpec | Mapping[str, Any], **kwargs: Any) -> ValueAC:
        """Build from an `EnvSpec` (or its ``to_dict()``); ``kwargs`` go to the constructor.

        The bounds of a continuous spec are passed along (they matter only with ``squash=True``).
        """
        if isinstance(env_spec, Mapping):
            env_spec = EnvSpec.from_dict(dict(env_spec))
        args: dict[str, Any] = {"obs_shape": env_spec.obs_shape, "action_type": env_spec.action_type}
        if env_spec.action_type == "discrete":
            args["n_actions"] = env_spec.n_actions
            args["action_mask"] = env_spec.action_mask
            args["board_shape"] = env_spec.board_shape
        else:
            args["action_shape"] = env_spec.action_shape
            if env_spec.action_low and env_spec.action_high:
                args["action_low"] = env_spec.action_low
                args["action_high"] = env_spec.action_high
        return cls(**{**args, **kwargs})

    # ----------------------------------------------------------------------------------------------
    def _flatten_batch(self, obs: Tensor) -> tuple[Tensor, Tensor | None, torch.Size]:
        """``(encoder input (N, ...), legal actions (N, A) or None, batch shape)``."""
        n = len(self.obs_shape)
        if obs.dim() <= n or tuple(obs.shape[-n:]) != self.obs_shape:
            raise ValueError(
                f"obs must have shape (*batch, *{self.obs_shape}) with at least one batch dim, "
                f"got {tuple(obs.shape)}"
            )
        batch_shape = obs.shape[:-n]
        flat = obs.reshape(-1, *self.obs_shape)
        if not self.action_mask:
            return flat, None, batch_shape
        features, legal = split_action_mask(flat, self.n_actions)
        return features, legal, batch_shape

    def _dist(self, features: Tensor, batch_shape: torch.Size, legal: Tensor | None = None) -> ActionDist:
        out = self.policy_head(features)
        if self.action_type == "discrete":
            logits = out if legal is None else mask_illegal(out, legal)
            return CategoricalDist(logits.reshape(*batch_shape, self.n_actions))
        mean = out.reshape(*batch_shape, *self.action_shape)
        if self.log_std_head is not None:
            log_std = self.log_std_head(features).reshape(*batch_shape, *self.action_shape)
        else:
            log_std = self.log_std.reshape(self.action_shape).expand_as(mean)
        log_std = log_std.clamp(*self.log_std_bounds)
        event_ndims = len(self.action_shape)
        if self.squash:
            return SquashedDiagGaussian(mean, log_std, self.action_low, self.action_high, event_ndims)
        return DiagGaussian(mean, log_std, event_ndims)

    def _value(self, features: Tensor, batch_shape: torch.Size) -> Tensor:
        return self.value_head(features).reshape(batch_shape)

    # ----------------------------------------------------------------------------------------------
    def forward(self, obs: Tensor) -> tuple[ActionDist, Tensor]:
        """``obs (*B, *obs_shape) -> (dist, value (*B))``; one encoder pass when shared."""
        flat, legal, batch_shape = self._flatten_batch(obs)
        actor_features = self.actor_encoder(flat)
        critic_features = actor_features if self.shared_encoder else self.critic_encoder(flat)
        return self._dist(actor_features, batch_shape, legal), self._value(critic_features, batch_shape)

    def action_dist(self, obs: Tensor) -> ActionDist:
        """Actor only: ``obs (*B, *obs_shape) -> dist`` (skips the critic encoder when separate)."""
        flat, legal, batch_shape = self._flatten_batch(obs)
        return self._dist(self.actor_encoder(flat), batch_shape, legal)

    def value(self, obs: Tensor) -> Tensor:
        """Critic only: ``obs (*B, *obs_shape) -> value (*B)`` (e.g. to bootstrap final observations)."""
        flat, _, batch_shape = self._flatten_batch(obs)
        return self._value(self.critic_encoder(flat), batch_shape)

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """For collection (no gradient): ``-> (action, log_prob (*B), value (*B))``.

        ``deterministic=True`` takes ``dist.mode`` (argmax / mean / squashed mean). The log-prob is
        ``dist.log_prob(action)``, computed exactly as `evaluate_actions` will recompute it.
        """
        dist, value = self(obs)
        action = dist.mode if deterministic else dist.sample()
        return action, dist.log_prob(action), value

    def evaluate_actions(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """For the loss (with gradient): ``-> (log_prob (*B), entropy (*B), value (*B))``.

        ``action`` as returned by `act`: ``(*B)`` integers or ``(*B, *action_shape)`` floats.
        Entropy is in nats, summed over action dims; for ``squash=True`` it is the base Gaussian's
        (see `SquashedDiagGaussian`).
        """
        dist, value = self(obs)
        return dist.log_prob(action), dist.entropy(), value
