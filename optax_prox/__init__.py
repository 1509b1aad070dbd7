"""optax_prox: the Trajectory Regularized Algorithm as optax transformations.

A proximal pull toward a periodically refreshed anchor, which steadies
training with small, noisy batches (Zhang, Qu, Chen and Metaxas, IJCAI 2019).
"""

from optax_prox._proximal import ProximalRegularizeState
from optax_prox._proximal import proximal_regularize
from optax_prox._schedules import inner_loop_schedule
from optax_prox._state_helpers import anchor_distance
from optax_prox._state_helpers import restart_inner_loop
from optax_prox._state_helpers import set_anchor
from optax_prox._trajectory import TrajectoryRegularizedState
from optax_prox._trajectory import tradam
from optax_prox._trajectory import trajectory_regularized
from optax_prox._trajectory import trsgd

__version__ = "0.5.0"

__all__ = (
  "ProximalRegularizeState",
  "TrajectoryRegularizedState",
  "anchor_distance",
  "inner_loop_schedule",
  "proximal_regularize",
  "restart_inner_loop",
  "set_anchor",
  "tradam",
  "trajectory_regularized",
  "trsgd",
)
