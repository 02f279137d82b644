"""q_nstep_sequence_td_error against targets computed by hand."""

import pytest
import torch
from tensor_helpers import close, t

from lightning_rl.rl_utils import (
    QSequenceData,
    q_nstep_sequence_td_error,
    value_inv_transform,
    value_transform,
)

# Three rows of T=4 steps, n=2, gamma 0.5; bootstrap values v (action 0; action 1 is worse by 100):
# row 0: steps 0-2 real, terminated at 2:
#        t0: 1 + 0.5*2 + 0.25*v1(20) = 7;  t1: 2 + 0.5*3 (no bootstrap) = 3.5;  t2: m=1: 3;  t3: padding
# row 1: all real, cut at 3 (no termination):
#        t0: 1 + .5 + .25*v1(2) = 2;  t1: 2.25;  t2: 2.5;  t3: m=1: 1 + .5*4 = 3
# row 2: steps 1-2 real (front padding), truncated at 2:
#        t1: 1 + .5 + .25*v2(2) = 2;  t2: m=1: 1 + .5*v2(2) = 2
MASK = t([[1, 1, 1, 0], [1, 1, 1, 1], [0, 1, 1, 0]]).bool()
REWARD = t([[1.0, 2.0, 3.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0]])
TERMINATED = t([[0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]).bool()
VALUE = t([[10.0, 20.0, 30.0, 40.0], [1.0, 2.0, 3.0, 4.0], [9.0, 1.0, 2.0, 9.0]])
TARGET = t([[7.0, 3.5, 3.0, 0.0], [2.0, 2.25, 2.5, 3.0], [0.0, 2.0, 2.0, 0.0]])


def data(**overrides) -> QSequenceData:
    q = torch.zeros(3, 4, 2).requires_grad_()
    fields = dict(
        q=q,
        bootstrap_q=torch.stack([VALUE, VALUE - 100.0], -1),
        action=torch.zeros(3, 4, dtype=torch.int64),
        reward=REWARD,
        terminated=TERMINATED,
        mask=MASK,
    )
    return QSequenceData(**{**fields, **overrides})


def test_targets_take_n_steps_within_the_sequence_and_stop_at_its_end():
    batch = data()
    loss, td = q_nstep_sequence_td_error(batch, gamma=0.5, nstep=2)
    close(td, TARGET)  # q = 0, so |target - q| is the target; zero at padding
    close(loss, (TARGET[MASK] ** 2).mean())
    loss.backward()
    assert batch.q.grad[~MASK].abs().sum() == 0 and batch.q.grad[..., 1].abs().sum() == 0
    assert not td.requires_grad


def test_bootstrap_action_weights_huber_and_one_step():
    # bootstrap_action 1 values every bootstrap 100 lower: row 1's t0 target is 1 + .5 + .25 * (2 - 100)
    td = q_nstep_sequence_td_error(data(bootstrap_action=torch.ones(3, 4, dtype=torch.int64)), 0.5, 2)[1]
    close(td[1, 0], abs(1.5 + 0.25 * (2.0 - 100.0)))
    close(td[0, 1:3], [3.5, 3.0])  # terminated windows do not bootstrap
    # weights are per sequence and the loss averages over real steps
    weight = t([1.0, 0.0, 2.0])
    loss = q_nstep_sequence_td_error(data(weight=weight), 0.5, 2)[0]
    per_step = TARGET**2 * weight.unsqueeze(1)
    close(loss, per_step[MASK].mean())
    huber = q_nstep_sequence_td_error(data(), 0.5, 2, loss_type="huber")[0]
    close(huber, torch.where(TARGET < 1, 0.5 * TARGET**2, TARGET - 0.5)[MASK].mean())
    # n = 1: r_t + 0.5 * (1 - terminated_t) * v_t
    one = q_nstep_sequence_td_error(data(), 0.5, 1)[1]
    close(one[1], 1.0 + 0.5 * VALUE[1])
    close(one[0, 2], 3.0)


def test_value_rescaling_transforms_the_bootstrap_and_the_target():
    eps = 1e-3
    td = q_nstep_sequence_td_error(data(), 0.5, 2, rescale_eps=eps)[1]
    inner = 1.0 + 0.5 * 2.0 + 0.25 * value_inv_transform(t(20.0), eps)
    close(td[0, 0], value_transform(inner, eps))
    close(td[0, 1], value_transform(t(3.5), eps))


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="mask"):
        q_nstep_sequence_td_error(data(mask=torch.zeros(3, 4, dtype=torch.bool)), 0.5, 2)
    with pytest.raises(ValueError, match="nstep"):
        q_nstep_sequence_td_error(data(), 0.5, 0)
    with pytest.raises(ValueError, match="reward"):
        q_nstep_sequence_td_error(data(reward=REWARD[:, :3]), 0.5, 2)
