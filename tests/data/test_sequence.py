"""SequenceBuilder on hand-built vector-env streams, and sequence_priority against hand-computed values."""

from __future__ import annotations

import random

import pytest
import torch
from tensordict import NonTensorData, TensorDict

from lightning_rl import keys
from lightning_rl.data import PrioritizedBuffer
from lightning_rl.data.sequence import SequenceBuilder, sequence_priority

E = 3
SEQ_LEN, BURN_IN, OVERLAP = 3, 2, 1  # L = 5, training parts start 2 steps apart
L = BURN_IN + SEQ_LEN
AGENTS = ("agents", "obs")  # nested per-agent key with extra dims (2 agents, 3 features)


def code(env: int, t: int) -> float:
    """Nonzero value identifying env ``env`` at global step ``t`` (padding is 0)."""
    return 100.0 * env + t + 1


def make_step(t: int, n_envs: int = E) -> TensorDict:
    """Vector step ``t``: every key encodes (env, t), so items can be checked position by position."""
    obs = torch.tensor([code(e, t) for e in range(n_envs)])
    return TensorDict(
        {
            keys.OBS: obs,
            keys.ACTION: obs.to(torch.int64),
            keys.TERMINATED: torch.ones(n_envs, dtype=torch.bool),
            "hidden": obs[:, None].repeat(1, 4),  # recurrent state recorded by the actor
            AGENTS: obs[:, None, None] + torch.arange(6.0).view(2, 3),
        },
        batch_size=[n_envs],
    )


def flags(*envs: int, n_envs: int = E) -> torch.Tensor:
    out = torch.zeros(n_envs, dtype=torch.bool)
    out[list(envs)] = True
    return out


def times(item: TensorDict, env: int) -> list[int | None]:
    """Global step of each position of one item of env ``env`` (None: padding), after checking the mask."""
    out = [None if v == 0 else round(v - code(env, 0)) for v in item[keys.OBS].tolist()]
    assert item[keys.MASK].tolist() == [t is not None for t in out]
    return out


def check_item(item: TensorDict, env: int, expected: list[int | None]) -> None:
    """Every key of ``item`` holds exactly the steps ``expected`` (global steps, None: zero padding)."""
    assert times(item, env) == expected
    for key, value in make_step(0).items(include_nested=True, leaves_only=True):
        want = torch.stack(
            [torch.zeros_like(value[env]) if t is None else make_step(t)[key][env] for t in expected]
        )
        assert item[key].dtype == value.dtype
        assert torch.equal(item[key], want), key


def check(out: TensorDict | None, expected: list[tuple[int, list[int | None]]]) -> None:
    """``out`` holds one item per (env, expected global steps) pair, in that order."""
    assert out is not None
    assert out.batch_size == (len(expected), L)
    for i, (env, steps) in enumerate(expected):
        check_item(out[i], env, steps)


N = None  # padding, in expected step lists


def test_full_sequences_burn_in_padding_then_context_from_previous_steps_with_overlap():
    b = SequenceBuilder(E, SEQ_LEN, burn_in=BURN_IN, overlap=OVERLAP)
    none = flags()
    assert b.add(make_step(0), none) is None
    assert b.add(make_step(1), none) is None
    out = b.add(make_step(2), none)
    assert out[keys.MASK].dtype == torch.bool and out[AGENTS].shape == (E, L, 2, 3)
    assert out["hidden"].shape == (E, L, 4)
    # First part of the episode: no history yet, so the burn-in positions are padding.
    check(out, [(e, [N, N, 0, 1, 2]) for e in range(E)])
    assert b.add(make_step(3), none) is None
    # Next part starts stride = 2 steps later and shares step 2 (overlap 1); burn-in is steps 0, 1.
    check(b.add(make_step(4), none), [(e, [0, 1, 2, 3, 4]) for e in range(E)])
    assert b.add(make_step(5), none) is None
    check(b.add(make_step(6), none), [(e, [2, 3, 4, 5, 6]) for e in range(E)])


def test_episode_ends_mid_sequence_short_episode_and_next_episode_has_no_burn_in_across_the_boundary():
    b = SequenceBuilder(E, SEQ_LEN, burn_in=BURN_IN, overlap=OVERLAP)
    assert b.add(make_step(0), flags()) is None
    # env1's episode (2 steps) is shorter than seq_len: one item, padded before and after.
    check(b.add(make_step(1), flags(1)), [(1, [N, N, 0, 1, N])])
    check(b.add(make_step(2), flags()), [(0, [N, N, 0, 1, 2]), (2, [N, N, 0, 1, 2])])
    # env0 ends one step into its second part: it is emitted padded at the end (step 2 is the overlap).
    check(b.add(make_step(3), flags(0)), [(0, [0, 1, 2, 3, N])])
    # env1's new episode began at step 2: its burn-in is padding, not steps of the previous episode.
    check(b.add(make_step(4), flags()), [(1, [N, N, 2, 3, 4]), (2, [0, 1, 2, 3, 4])])
    assert b.add(make_step(5), flags()) is None
    # env0's new episode began at step 4.
    check(b.add(make_step(6), flags()), [(0, [N, N, 4, 5, 6]), (1, [2, 3, 4, 5, 6]), (2, [2, 3, 4, 5, 6])])


def test_episode_end_on_a_part_boundary_emits_only_that_part():
    b = SequenceBuilder(E, SEQ_LEN, burn_in=BURN_IN, overlap=OVERLAP)
    for t in range(4):
        b.add(make_step(t), flags())
    # Step 4 completes the part [2, 3, 4] and ends env1's episode: nothing is left untrained.
    check(b.add(make_step(4), flags(1)), [(e, [0, 1, 2, 3, 4]) for e in range(E)])
    # Ending one step later leaves step 5 untrained: the pending part [4, 5, pad] is emitted.
    check(b.add(make_step(5), flags(0)), [(0, [2, 3, 4, 5, N])])


def test_a_dropped_step_discards_its_episode_and_the_env_starts_afresh():
    b = SequenceBuilder(E, SEQ_LEN, burn_in=BURN_IN, overlap=OVERLAP)
    b.add(make_step(0), flags())
    # env1's step 1 failed: no item for its episode (not even when others complete), nothing recorded
    assert b.add(make_step(1), flags(), dropped=flags(1)) is None
    check(b.add(make_step(2), flags()), [(0, [N, N, 0, 1, 2]), (2, [N, N, 0, 1, 2])])
    # env1 restarted at step 2: its first part is steps 2..4, no burn-in from before the failure
    b.add(make_step(3), flags())
    check(b.add(make_step(4), flags()), [(0, [0, 1, 2, 3, 4]), (1, [N, N, 2, 3, 4]), (2, [0, 1, 2, 3, 4])])
    with pytest.raises(ValueError, match="dropped must be a bool tensor"):
        b.add(make_step(5), flags(), dropped=torch.zeros(E))


def test_seq_len_one_without_burn_in_emits_every_step():
    b = SequenceBuilder(2, seq_len=1)
    out = b.add(make_step(0, n_envs=2), flags(1, n_envs=2))
    assert out.batch_size == (2, 1)
    assert out[keys.OBS].tolist() == [[code(0, 0)], [code(1, 0)]]
    assert out[keys.MASK].tolist() == [[True], [True]]


def test_reset_drops_pending_steps():
    b = SequenceBuilder(E, SEQ_LEN, burn_in=BURN_IN, overlap=OVERLAP)
    b.add(make_step(0), flags())
    b.add(make_step(1), flags())
    b.reset(flags(0))
    check(b.add(make_step(2), flags()), [(1, [N, N, 0, 1, 2]), (2, [N, N, 0, 1, 2])])
    assert b.add(make_step(3), flags()) is None
    check(b.add(make_step(4), flags()), [(0, [N, N, 2, 3, 4]), (1, [0, 1, 2, 3, 4]), (2, [0, 1, 2, 3, 4])])
    b.reset()
    assert b.add(make_step(5), flags()) is None
    assert b.add(make_step(6), flags()) is None
    check(b.add(make_step(7), flags()), [(e, [N, N, 5, 6, 7]) for e in range(E)])


def test_emitted_tensors_are_fresh_copies():
    b = SequenceBuilder(1, seq_len=2, burn_in=1)
    first = make_step(0, n_envs=1)
    b.add(first, flags(n_envs=1))
    out = b.add(make_step(1, n_envs=1), flags(n_envs=1))
    first[keys.OBS].fill_(-1.0)  # the env reuses its buffer in place
    assert out[keys.OBS].tolist() == [[0.0, code(0, 0), code(0, 1)]]
    out[keys.OBS].fill_(-2.0)
    b.add(make_step(2, n_envs=1), flags(n_envs=1))
    out = b.add(make_step(3, n_envs=1), flags(n_envs=1))
    assert out[keys.OBS].tolist() == [[code(0, 1), code(0, 2), code(0, 3)]]


@pytest.mark.parametrize(
    ("seq_len", "burn_in", "overlap"), [(3, 2, 0), (1, 0, 0), (4, 3, 0), (3, 2, 1), (4, 1, 3)]
)
def test_random_episodes_cover_every_step_with_parts_stride_apart_and_burn_in_from_the_same_episode(
    seq_len, burn_in, overlap
):
    n_envs, n_steps, stride = 3, 60, seq_len - overlap
    rng = random.Random(seq_len * 100 + burn_in * 10 + overlap)
    b = SequenceBuilder(n_envs, seq_len, burn_in=burn_in, overlap=overlap)
    episode = [0] * n_envs
    steps_of = {}  # (env, episode) -> its global steps
    items = {}  # (env, episode) -> items, in emission order
    for t in range(n_steps):
        done = torch.tensor([rng.random() < 0.15 or t == n_steps - 1 for _ in range(n_envs)])
        step = make_step(t, n_envs)
        step["episode"] = torch.tensor(episode)
        out = b.add(step, done)
        for e in range(n_envs):
            steps_of.setdefault((e, episode[e]), []).append(t)
        if out is not None:
            envs = [round(v // 100) for v in out[keys.OBS][:, burn_in].tolist()]
            assert envs == sorted(envs)  # env-major
            for i, e in enumerate(envs):
                items.setdefault((e, episode[e]), []).append(out[i])
        episode = [ep + int(d) for ep, d in zip(episode, done.tolist(), strict=True)]
    assert items.keys() == steps_of.keys()  # every episode gives at least one item
    for (e, ep), episode_steps in steps_of.items():
        first = episode_steps[0]
        trained = []
        for k, item in enumerate(items[(e, ep)]):
            seq = times(item, e)
            # The training part starts at episode step k * stride and is real from there on, padded only
            # after the episode's last step; burn-in is the steps just before it, padding before the episode.
            start = first + k * stride
            assert seq == [
                s if first <= s <= episode_steps[-1] else None
                for s in range(start - burn_in, start + seq_len)
            ]
            assert item["episode"][item[keys.MASK]].eq(ep).all()
            trained += [s for s in seq[burn_in:] if s is not None]
        if overlap == 0:
            assert trained == episode_steps  # every real step in exactly one training part
        else:
            assert set(trained) == set(episode_steps)
            assert trained[-1] == episode_steps[-1]


def test_state_dict_round_trip_continues_identically(tmp_path):
    a = SequenceBuilder(E, SEQ_LEN, burn_in=BURN_IN, overlap=OVERLAP)
    for t in range(4):
        a.add(make_step(t), flags(1) if t == 1 else flags())
    path = tmp_path / "seq.pt"
    torch.save(a.state_dict(), path)
    b = SequenceBuilder(E, SEQ_LEN, burn_in=BURN_IN, overlap=OVERLAP)
    b.load_state_dict(torch.load(path, weights_only=True))
    for t in range(4, 9):
        done = flags(2) if t == 6 else flags()
        out_a, out_b = a.add(make_step(t), done), b.add(make_step(t), done)
        assert (out_a is None) == (out_b is None)
        if out_a is not None:
            assert (out_a == out_b).all()
    fresh = SequenceBuilder(E, SEQ_LEN, burn_in=BURN_IN, overlap=OVERLAP)
    fresh.load_state_dict(SequenceBuilder(E, SEQ_LEN, burn_in=BURN_IN, overlap=OVERLAP).state_dict())
    assert fresh.add(make_step(0), flags()) is None


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda s: s.update(format="other"), "'format'"),
        (lambda s: s.update(seq_len=4), "'seq_len' is 4 but this builder has 3"),
        (lambda s: s.update(t=-1), "'t' must be an int >= 0"),
        (lambda s: s.update(n_ep=s["n_ep"].float()), "'n_ep' must be an int64 tensor of shape"),
        (lambda s: s.update(n_ep=torch.full((E,), 99)), r"'n_ep' values must be in \[0, t=4\]"),
        (
            lambda s: s.update(leaves=[("obs", torch.zeros(2, E))]),
            r"'leaves' entry must be \(key, tensor of shape",
        ),
        (lambda s: s.update(leaves=[]), "'n_ep' > 0 but no recorded 'leaves'"),
    ],
)
def test_load_state_dict_rejects_corrupt_or_incompatible_state(change, match):
    b = SequenceBuilder(E, SEQ_LEN, burn_in=BURN_IN, overlap=OVERLAP)
    for t in range(4):
        b.add(make_step(t), flags())
    state = b.state_dict()
    change(state)
    with pytest.raises(ValueError, match=match):
        SequenceBuilder(E, SEQ_LEN, burn_in=BURN_IN, overlap=OVERLAP).load_state_dict(state)


def test_round_trip_through_prioritized_replay():
    b = SequenceBuilder(E, SEQ_LEN, burn_in=BURN_IN, overlap=OVERLAP)
    buffer = PrioritizedBuffer(maxlen=16, seed=0)
    stored = []
    for t in range(7):
        out = b.add(make_step(t), flags(0) if t == 3 else flags())
        if out is not None:
            buffer.extend(out)
            stored += [out[i] for i in range(out.batch_size[0])]
    assert len(buffer) == len(stored) == 9
    batch = buffer.sample(6)
    assert batch[keys.OBS].shape == (6, L) and batch[AGENTS].shape == (6, L, 2, 3)
    assert batch[keys.MASK].dtype == torch.bool and batch[keys.MASK].shape == (6, L)
    for i, index in enumerate(batch[keys.INDEX].tolist()):
        assert torch.equal(batch[keys.OBS][i], stored[index][keys.OBS])
        assert torch.equal(batch[keys.MASK][i], stored[index][keys.MASK])
    td_error = torch.arange(6 * SEQ_LEN, dtype=torch.float32).view(6, SEQ_LEN)
    priority = sequence_priority(td_error, batch[keys.MASK][:, BURN_IN:])
    assert priority.shape == (6,)
    buffer.update_priority(batch[keys.INDEX], priority)


def test_sequence_priority_hand_computed():
    td_error = torch.tensor([[1.0, -3.0, 2.0, 100.0], [0.5, -0.5, 0.0, 0.0], [-4.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False], [True, False, False, False]])
    # row 0: max 3, mean 2; row 1: max 0.5, mean 0.5; row 2: max 4, mean 4 (masked steps are ignored).
    torch.testing.assert_close(sequence_priority(td_error, mask), torch.tensor([2.9, 0.5, 4.0]))
    torch.testing.assert_close(sequence_priority(td_error, mask, eta=0.0), torch.tensor([2.0, 0.5, 4.0]))
    torch.testing.assert_close(sequence_priority(td_error, mask, eta=1), torch.tensor([3.0, 0.5, 4.0]))
    grad_error = td_error.clone().requires_grad_(True)
    assert not sequence_priority(grad_error, mask).requires_grad


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_envs": 0}, "n_envs must be an int >= 1, got 0"),
        ({"n_envs": 2.0}, "n_envs must be an int >= 1, got 2.0"),
        ({"seq_len": 0}, "seq_len must be an int >= 1, got 0"),
        ({"burn_in": -1}, "burn_in must be an int >= 0, got -1"),
        ({"burn_in": True}, "burn_in must be an int >= 0, got True"),
        ({"overlap": 3}, r"overlap must be an int in \[0, seq_len=3\), got 3"),
        ({"overlap": -1}, r"overlap must be an int in \[0, seq_len=3\), got -1"),
    ],
)
def test_invalid_constructor_arguments(kwargs, match):
    args = {"n_envs": E, "seq_len": SEQ_LEN, "burn_in": BURN_IN, "overlap": OVERLAP} | kwargs
    with pytest.raises(ValueError, match=match):
        SequenceBuilder(**args)


def _with(key, value):
    step = make_step(1)
    step[key] = value
    return step


@pytest.mark.parametrize(
    ("step", "done", "match"),
    [
        (
            {keys.OBS: torch.zeros(E)},
            flags(),
            r"step must be a TensorDict with batch_size \[n_envs=3\], got dict",
        ),
        (make_step(1, n_envs=2), flags(), r"step must have batch_size \[n_envs=3\], got \[2\]"),
        (
            make_step(1),
            torch.zeros(E, dtype=torch.int64),
            r"done must be a bool tensor of shape \(n_envs=3,\)",
        ),
        (
            make_step(1),
            flags(n_envs=2),
            r"done must be a bool tensor .* got tensor\(shape=\(2,\), dtype=torch.bool",
        ),
        (make_step(1).exclude("hidden"), flags(), "step is missing key 'hidden'"),
        (_with("extra", torch.zeros(E)), flags(), r"step has keys the builder does not record: \['extra'\]"),
        (_with(keys.OBS, torch.zeros(E, dtype=torch.float64)), flags(), "step key 'obs' has shape"),
        (_with("hidden", torch.zeros(E, 5)), flags(), r"the builder records shape \(3, 4\)"),
    ],
)
def test_invalid_add_arguments(step, done, match):
    b = SequenceBuilder(E, SEQ_LEN, burn_in=BURN_IN, overlap=OVERLAP)
    b.add(make_step(0), flags())
    with pytest.raises(ValueError, match=match):
        b.add(step, done)


def test_invalid_first_step():
    b = SequenceBuilder(E, SEQ_LEN)
    with pytest.raises(ValueError, match="step must not contain the key 'mask'"):
        b.add(_with(keys.MASK, torch.ones(E, dtype=torch.bool)), flags())
    with pytest.raises(ValueError, match="step key 'name' holds non-tensor data"):
        b.add(_with("name", NonTensorData("cartpole", batch_size=[E])), flags())
    with pytest.raises(ValueError, match="step has no tensor entries"):
        b.add(TensorDict({}, batch_size=[E]), flags())


def test_invalid_reset_mask():
    b = SequenceBuilder(E, SEQ_LEN)
    with pytest.raises(
        ValueError,
        match=r"env_mask must be a bool tensor of shape \(n_envs=3,\), got tensor\(.*dtype=torch.int64",
    ):
        b.reset(torch.tensor([1, 0, 0]))
    with pytest.raises(ValueError, match=r"env_mask must be a bool tensor .* got list"):
        b.reset([True, False, False])


@pytest.mark.parametrize(
    ("td_error", "mask", "eta", "match"),
    [
        (
            torch.zeros(2, 3, dtype=torch.int64),
            torch.ones(2, 3, dtype=torch.bool),
            0.9,
            "td_error must be a floating",
        ),
        (torch.zeros(3), torch.ones(3, dtype=torch.bool), 0.9, r"td_error must be .* shape \(B, T\)"),
        (
            torch.zeros(2, 3),
            torch.ones(2, 3),
            0.9,
            r"mask must be a bool tensor of td_error's shape \(2, 3\)",
        ),
        (torch.zeros(2, 3), torch.ones(2, 4, dtype=torch.bool), 0.9, "mask must be a bool tensor"),
        (
            torch.zeros(2, 3),
            torch.ones(2, 3, dtype=torch.bool),
            1.5,
            r"eta must be a float in \[0, 1\], got 1.5",
        ),
        (
            torch.zeros(2, 3),
            torch.ones(2, 3, dtype=torch.bool),
            True,
            r"eta must be a float in \[0, 1\], got True",
        ),
        (torch.zeros(2, 3), torch.tensor([[True] * 3, [False] * 3]), 0.9, r"rows without any: \[1\]"),
    ],
)
def test_invalid_sequence_priority_arguments(td_error, mask, eta, match):
    with pytest.raises(ValueError, match=match):
        sequence_priority(td_error, mask, eta=eta)
