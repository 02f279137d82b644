"""NStepTransitionBuilder on hand-built 2-env streams."""

from __future__ import annotations

import pytest
import torch

from lightning_rl import keys
from lightning_rl.data import NStepTransitionBuilder

E = 2


def obs_at(t: int, ep: int = 0) -> torch.Tensor:
    """(E, 2) observation: env e at time t of episode ep is [100 * e + t, ep]."""
    return torch.tensor([[100.0 * e + t, ep] for e in range(E)])


def reward_at(t: int) -> torch.Tensor:
    return torch.tensor([10.0 * e + t + 1 for e in range(E)])  # env0: t+1, env1: 10+t+1


def flags(*envs: int) -> torch.Tensor:
    out = torch.zeros(E, dtype=torch.bool)
    out[list(envs)] = True
    return out


def step(builder, t, terminated=(), truncated=(), obs=None, next_obs=None, dropped=None):
    obs = obs_at(t) if obs is None else obs
    next_obs = obs_at(t + 1) if next_obs is None else next_obs
    action = torch.tensor([t, 50 + t])
    return builder.add(obs, action, reward_at(t), flags(*terminated), flags(*truncated), next_obs, dropped)


def rows(td):
    """Emitted transitions as comparable tuples: (obs, action, rewards, next_obs, terminated, steps)."""
    return [
        (
            td[keys.OBS][i].tolist(),
            td[keys.ACTION][i].item(),
            td[keys.REWARD][i].tolist(),
            td[keys.NEXT_OBS][i].tolist(),
            td[keys.TERMINATED][i].item(),
            td[keys.STEPS][i].item(),
        )
        for i in range(td.batch_size[0])
    ]


def test_full_windows():
    b = NStepTransitionBuilder(E, nstep=3)
    assert step(b, 0) is None
    assert step(b, 1) is None
    out = step(b, 2)
    assert out.batch_size == (2,)
    assert out[keys.REWARD].dtype == torch.float32 and out[keys.STEPS].dtype == torch.int64
    assert out[keys.TERMINATED].dtype == torch.bool
    assert rows(out) == [
        ([0.0, 0.0], 0, [1.0, 2.0, 3.0], [3.0, 0.0], False, 3),
        ([100.0, 0.0], 50, [11.0, 12.0, 13.0], [103.0, 0.0], False, 3),
    ]
    assert rows(step(b, 3)) == [
        ([1.0, 0.0], 1, [2.0, 3.0, 4.0], [4.0, 0.0], False, 3),
        ([101.0, 0.0], 51, [12.0, 13.0, 14.0], [104.0, 0.0], False, 3),
    ]
    assert b.pending().tolist() == [2, 2]


@pytest.mark.parametrize("terminated", [True, False])
def test_episode_end_mid_window_flushes_shorter_windows(terminated):
    b = NStepTransitionBuilder(E, nstep=3)
    assert step(b, 0) is None
    final = obs_at(2)
    final[1] = torch.tensor([-1.0, -1.0])  # env1's true final observation (autoreset handled by caller)
    end = {"terminated": (1,)} if terminated else {"truncated": (1,)}
    out = step(b, 1, next_obs=final, **end)
    # Only env1 flushes: windows from t=0 (2 steps) and t=1 (1 step), oldest first, zero-padded.
    assert rows(out) == [
        ([100.0, 0.0], 50, [11.0, 12.0, 0.0], [-1.0, -1.0], terminated, 2),
        ([101.0, 0.0], 51, [12.0, 0.0, 0.0], [-1.0, -1.0], terminated, 1),
    ]
    assert b.pending().tolist() == [2, 0]
    # env1 starts a new episode at t=2; env0 completes its first full window.
    new_obs = obs_at(2)
    new_obs[1] = torch.tensor([500.0, 1.0])
    next_obs = obs_at(3)
    next_obs[1] = torch.tensor([501.0, 1.0])
    out = step(b, 2, obs=new_obs, next_obs=next_obs)
    assert rows(out) == [([0.0, 0.0], 0, [1.0, 2.0, 3.0], [3.0, 0.0], False, 3)]
    assert b.pending().tolist() == [2, 1]
    step(b, 3, obs=next_obs, next_obs=obs_at(4))
    out = step(b, 4, obs=obs_at(4), next_obs=obs_at(5))
    # env1's new-episode window starts at its reset observation, never mixing episodes.
    assert rows(out)[1] == ([500.0, 1.0], 52, [13.0, 14.0, 15.0], [105.0, 0.0], False, 3)


def test_episode_end_with_full_window_flushes_all_lengths():
    b = NStepTransitionBuilder(E, nstep=3)
    step(b, 0)
    step(b, 1)
    out = step(b, 2, terminated=(0,))
    assert rows(out) == [
        ([0.0, 0.0], 0, [1.0, 2.0, 3.0], [3.0, 0.0], True, 3),
        ([1.0, 0.0], 1, [2.0, 3.0, 0.0], [3.0, 0.0], True, 2),
        ([2.0, 0.0], 2, [3.0, 0.0, 0.0], [3.0, 0.0], True, 1),
        ([100.0, 0.0], 50, [11.0, 12.0, 13.0], [103.0, 0.0], False, 3),
    ]
    assert b.pending().tolist() == [0, 2]


def test_episode_end_on_first_step_and_both_envs():
    b = NStepTransitionBuilder(E, nstep=3)
    out = step(b, 0, terminated=(0,), truncated=(1,))
    assert rows(out) == [
        ([0.0, 0.0], 0, [1.0, 0.0, 0.0], [1.0, 0.0], True, 1),
        ([100.0, 0.0], 50, [11.0, 0.0, 0.0], [101.0, 0.0], False, 1),
    ]
    assert b.pending().tolist() == [0, 0]


def test_dropped_step_is_no_transition_and_pending_windows_bootstrap_from_its_obs():
    """An env manager drops env1's step 2 (its env crashed): env1's windows from t=0 and t=1 end at
    t=1, truncated, bootstrapping from obs_at(2), the last observation env1 really reached."""
    b = NStepTransitionBuilder(E, nstep=3)
    step(b, 0)
    step(b, 1)
    out = step(b, 2, truncated=(1,), next_obs=torch.zeros(E, 2), dropped=flags(1))
    assert rows(out) == [
        ([100.0, 0.0], 50, [11.0, 12.0, 0.0], [102.0, 0.0], False, 2),
        ([101.0, 0.0], 51, [12.0, 0.0, 0.0], [102.0, 0.0], False, 1),
        ([0.0, 0.0], 0, [1.0, 2.0, 3.0], [0.0, 0.0], False, 3),
    ]
    assert b.pending().tolist() == [2, 0]
    # env1's next episode starts clean at t=3 and never includes the dropped step.
    step(b, 3)
    out = step(b, 4)
    out = step(b, 5)
    assert rows(out)[1] == ([103.0, 0.0], 53, [14.0, 15.0, 16.0], [106.0, 0.0], False, 3)


def test_dropped_step_with_nstep_one_and_nothing_pending():
    b = NStepTransitionBuilder(E, nstep=1)
    out = step(b, 0, truncated=(0,), dropped=flags(0))
    assert rows(out) == [([100.0, 0.0], 50, [11.0], [101.0, 0.0], False, 1)]
    b3 = NStepTransitionBuilder(E, nstep=3)
    assert step(b3, 0, truncated=(0,), dropped=flags(0)) is None  # env0 had nothing pending
    assert b3.pending().tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"dropped must have shape \(n_envs=2,\)"):
        step(b3, 1, dropped=torch.zeros(3, dtype=torch.bool))


def test_nstep_one_emits_one_transition_per_env_per_step():
    b = NStepTransitionBuilder(E, nstep=1)
    for t in range(4):
        out = step(b, t, terminated=(1,) if t == 2 else ())
        assert out.batch_size == (E,)
        assert out[keys.REWARD].shape == (E, 1)
        assert out[keys.STEPS].tolist() == [1, 1]
        assert out[keys.REWARD][:, 0].tolist() == reward_at(t).tolist()
        assert torch.equal(out[keys.OBS], obs_at(t)) and torch.equal(out[keys.NEXT_OBS], obs_at(t + 1))
        assert out[keys.TERMINATED].tolist() == [False, t == 2]


def test_continuous_actions_and_numpy_inputs():
    import numpy as np

    b = NStepTransitionBuilder(E, nstep=2)
    for t in range(2):
        out = b.add(
            np.full((E, 3), t, dtype=np.float32),
            np.full((E, 2), 0.5 * t, dtype=np.float32),
            np.ones(E),
            np.zeros(E, dtype=bool),
            np.zeros(E, dtype=bool),
            np.full((E, 3), t + 1, dtype=np.float32),
        )
    assert out[keys.ACTION].shape == (E, 2) and out[keys.ACTION].dtype == torch.float32
    assert out[keys.OBS].shape == (E, 3) and out[keys.REWARD].tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_reset_drops_pending():
    b = NStepTransitionBuilder(E, nstep=3)
    step(b, 0)
    step(b, 1)
    b.reset(torch.tensor([True, False]))
    assert b.pending().tolist() == [0, 2]
    out = step(b, 2)
    assert [r[0] for r in rows(out)] == [[100.0, 0.0]]  # only env1's window completes
    b.reset()
    assert b.pending().tolist() == [0, 0]
    assert step(b, 3) is None


def test_state_dict_roundtrip(tmp_path):
    a = NStepTransitionBuilder(E, nstep=3)
    step(a, 0)
    step(a, 1, terminated=(1,))
    step(a, 2)
    torch.save(a.state_dict(), tmp_path / "nstep.pt")
    b = NStepTransitionBuilder(E, nstep=3)
    b.load_state_dict(torch.load(tmp_path / "nstep.pt", weights_only=True))
    for t in range(3, 7):
        out_a, out_b = (
            step(a, t, truncated=(0,) if t == 5 else ()),
            step(b, t, truncated=(0,) if t == 5 else ()),
        )
        assert (out_a == out_b).all()
    with pytest.raises(ValueError, match="nstep"):
        NStepTransitionBuilder(E, nstep=2).load_state_dict(a.state_dict())
    bad = a.state_dict()
    bad["count"] = torch.tensor([0, 7])
    with pytest.raises(ValueError, match="count"):
        b.load_state_dict(bad)


def test_argument_errors():
    with pytest.raises(ValueError, match="n_envs"):
        NStepTransitionBuilder(0)
    with pytest.raises(ValueError, match="nstep"):
        NStepTransitionBuilder(2, nstep=0)
    b = NStepTransitionBuilder(E, nstep=2)
    with pytest.raises(ValueError, match="obs"):
        b.add(torch.zeros(3, 2), torch.zeros(3), torch.zeros(3), flags(), flags(), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="reward"):
        b.add(obs_at(0), torch.zeros(E), torch.zeros(E, 1), flags(), flags(), obs_at(1))
    with pytest.raises(ValueError, match="next_obs"):
        b.add(obs_at(0), torch.zeros(E), torch.zeros(E), flags(), flags(), torch.zeros(E, 3))
