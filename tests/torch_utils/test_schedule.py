"""``lightning_rl.torch_utils.Schedule``: exact values, and the formulas of the helpers it replaced."""

import math

import pytest

from lightning_rl.torch_utils import Schedule


def test_constant_holds_start():
    schedule = Schedule(0.2, 0.05, "constant")
    assert [schedule(t) for t in (-1.0, 0.0, 0.5, 2.0)] == [0.2, 0.2, 0.2, 0.2]


def test_linear_over_env_steps_then_held():
    epsilon = Schedule(1.0, 0.1, "linear", duration=100)
    assert epsilon(0) == 1.0
    assert epsilon(50) == pytest.approx(0.55)
    assert epsilon(100) == pytest.approx(0.1)
    assert epsilon(10_000) == pytest.approx(0.1)
    assert epsilon(-5) == 1.0  # negative steps count as 0


def test_linear_over_a_budget_fraction_anneals_to_zero_by_default():
    lr = Schedule(1e-3, None, "linear")
    assert lr.end == 0.0
    assert lr(0.25) == pytest.approx(7.5e-4)
    assert Schedule(0.2, 0.05, "linear")(2.0) == pytest.approx(0.05)  # clamped past the budget


def test_exp_decay():
    epsilon = Schedule(1.0, 0.1, "exp", duration=100)
    assert epsilon(0) == 1.0
    assert epsilon(100) == pytest.approx(0.1 + 0.9 * math.exp(-1.0))
    assert epsilon(-3) == 1.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"kind": "cosine"}, "kind"), ({"duration": 0}, "duration"), ({"duration": -1.0}, "duration")],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Schedule(1.0, 0.0, **kwargs)


# The three helpers Schedule replaced, as they were written: each schedule must return the very same floats.


def _old_scheduled(start, end, schedule, progress):  # policies/actor_critic.py
    if schedule == "constant":
        return start
    end = 0.0 if end is None else end
    return start + (end - start) * min(max(progress, 0.0), 1.0)


def _old_epsilon(start, end, decay, kind, step):  # rl_utils/exploration.py epsilon_greedy_schedule
    if kind == "linear":
        return start + (end - start) * min(max(step, 0) / decay, 1.0)
    return end + (start - end) * math.exp(-max(step, 0) / decay)


def _old_linear_beta(start, end, steps, step):  # data/replay.py linear_beta
    frac = min(max(step, 0) / steps, 1.0)
    return start + (end - start) * frac


PROGRESS = [-0.5, 0.0, 1e-7, 0.1, 1 / 3, 0.5, 0.7, 0.999999, 1.0, 1.5]
STEPS = [-3, 0, 1, 7, 333, 4_999, 5_000, 9_999, 10_000, 10_001, 123_457]


@pytest.mark.parametrize("kind", ["constant", "linear"])
@pytest.mark.parametrize(("start", "end"), [(3e-4, None), (0.2, 0.05), (0.01, 0.0), (2.5e-4, 1e-5)])
def test_identical_to_the_budget_fraction_schedule(kind, start, end):
    schedule = Schedule(start, end, kind)
    assert [schedule(p) for p in PROGRESS] == [_old_scheduled(start, end, kind, p) for p in PROGRESS]


@pytest.mark.parametrize("kind", ["linear", "exp"])
@pytest.mark.parametrize(("start", "end", "decay"), [(1.0, 0.05, 10_000), (0.9, 0.1, 333), (0.5, 0.5, 7)])
def test_identical_to_the_epsilon_schedule(kind, start, end, decay):
    schedule = Schedule(start, end, kind, decay)
    assert [schedule(s) for s in STEPS] == [_old_epsilon(start, end, decay, kind, s) for s in STEPS]


@pytest.mark.parametrize(("start", "end", "steps"), [(0.4, 1.0, 100_000), (0.6, 1.0, 333), (0.0, 0.7, 1)])
def test_identical_to_linear_beta(start, end, steps):
    schedule = Schedule(start, end, "linear", steps)
    assert [schedule(s) for s in STEPS] == [_old_linear_beta(start, end, steps, s) for s in STEPS]


def test_off_policy_beta_is_a_linear_schedule_over_env_steps():
    from lightning_rl.datamodules import OffPolicyDataModule

    beta = OffPolicyDataModule(priority_beta=0.4, priority_beta_final=1.0, priority_beta_steps=100).beta
    assert (beta(0), beta(50), beta(100), beta(10_000)) == (0.4, 0.7, 1.0, 1.0)
