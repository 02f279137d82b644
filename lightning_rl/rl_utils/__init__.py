"""Pure tensor RL building blocks: TD losses, return estimators and exploration helpers.

Each module lists its public names in ``__all__``; this package re-exports exactly those.
"""

from lightning_rl.rl_utils import a2c as _a2c
from lightning_rl.rl_utils import advantage as _advantage
from lightning_rl.rl_utils import atoc as _atoc
from lightning_rl.rl_utils import coma as _coma
from lightning_rl.rl_utils import exploration as _exploration
from lightning_rl.rl_utils import ppo as _ppo
from lightning_rl.rl_utils import qac as _qac
from lightning_rl.rl_utils import sequence_td as _sequence_td
from lightning_rl.rl_utils import td as _td
from lightning_rl.rl_utils import upgo as _upgo
from lightning_rl.rl_utils import vtrace as _vtrace
from lightning_rl.rl_utils.a2c import *  # noqa: F403
from lightning_rl.rl_utils.advantage import *  # noqa: F403
from lightning_rl.rl_utils.atoc import *  # noqa: F403
from lightning_rl.rl_utils.coma import *  # noqa: F403
from lightning_rl.rl_utils.exploration import *  # noqa: F403
from lightning_rl.rl_utils.ppo import *  # noqa: F403
from lightning_rl.rl_utils.qac import *  # noqa: F403
from lightning_rl.rl_utils.sequence_td import *  # noqa: F403
from lightning_rl.rl_utils.td import *  # noqa: F403
from lightning_rl.rl_utils.upgo import *  # noqa: F403
from lightning_rl.rl_utils.vtrace import *  # noqa: F403

__all__ = [
    *_td.__all__,
    *_sequence_td.__all__,
    *_exploration.__all__,
    *_advantage.__all__,
    *_ppo.__all__,
    *_qac.__all__,
    *_a2c.__all__,
    *_coma.__all__,
    *_atoc.__all__,
    *_vtrace.__all__,
    *_upgo.__all__,
]
