"""SampleInsertRatio band and the BackgroundCollection thread: waiting, stopping, error hand-off."""

import math
import threading

import pytest

from lightning_rl.data.background import BackgroundCollection
from lightning_rl.data.throttle import SampleInsertRatio


def test_band_holds_back_the_side_that_runs_ahead():
    band = SampleInsertRatio((2.0, 4.0))
    assert not band.can_sample(sampled=0, inserted=0)  # nothing inserted: nothing to sample
    assert band.can_sample(sampled=39, inserted=10) and not band.can_sample(sampled=40, inserted=10)
    assert band.can_insert(sampled=20, inserted=10) and not band.can_insert(sampled=19, inserted=10)


@pytest.mark.parametrize("band", [(0.0, 0.5), (1.0, 1.0), (0.5, 3.0), (0.0, math.inf)])
def test_learner_and_collector_never_wait_for_each_other(band):
    throttle = SampleInsertRatio(band)
    for inserted in range(1, 200):
        for sampled in range(0, 600):
            assert throttle.can_sample(sampled, inserted) or throttle.can_insert(sampled, inserted)


@pytest.mark.parametrize(
    "band", [(1.0,), (2.0, 1.0), (-1.0, 1.0), (0.0, 0.0), (math.inf, math.inf), (math.nan, 1.0), "12", 3]
)
def test_bad_band_is_a_clear_error(band):
    with pytest.raises(ValueError, match="sample_insert_ratio"):
        SampleInsertRatio(band)


def _counting_background(limit: int, fail_at: int | None = None):
    cond = threading.Condition()
    state = {"steps": 0, "allowed": 5}

    def step():
        if state["steps"] == fail_at:
            raise OSError("env crashed")
        with cond:
            state["steps"] += 1
            cond.notify_all()

    background = BackgroundCollection(
        cond,
        step,
        may_step=lambda: state["steps"] < state["allowed"],
        finished=lambda: state["steps"] >= limit,
    )
    return cond, state, background


def test_thread_steps_while_allowed_and_ends_when_finished():
    cond, state, background = _counting_background(limit=12)
    background.start()
    with cond:
        assert background.wait_until(lambda: state["steps"] == 5)
        state["allowed"] = 100  # the learner caught up: let the collector go on
        cond.notify_all()
        assert not background.wait_until(lambda: False)  # the thread finishes at its limit
    assert state["steps"] == 12 and not background.alive
    background.stop()


def test_stop_ends_a_waiting_thread():
    cond, state, background = _counting_background(limit=100)
    background.start()
    with cond:
        background.wait_until(lambda: state["steps"] == 5)  # now held back by may_step
    background.stop()
    assert not background.alive and state["steps"] == 5


def test_thread_errors_reach_the_consumer():
    cond, state, background = _counting_background(limit=100, fail_at=3)
    background.start()
    with cond, pytest.raises(RuntimeError, match="background env collection failed") as info:
        background.wait_until(lambda: False)
    assert isinstance(info.value.__cause__, OSError)
    background.stop()
