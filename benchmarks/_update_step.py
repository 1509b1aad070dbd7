"""The optimizer update alone: jitted, params and state donated."""

import dataclasses
from typing import Any, Sequence

import optax

from benchmarks import _models
from benchmarks import _optimizers
from benchmarks import _stepping
from benchmarks import _timing


@dataclasses.dataclass(frozen=True)
class UpdateRow:
  """The measured cost of one optimizer's update at one model size."""

  num_params: int
  optimizer: str
  baseline: str
  seconds: float
  ratio: float
  ideal_ratio: float
  ideal_streams: float
  hlo_streams: float
  bytes_per_second: float
  state_bytes: int
  temp_bytes: int


def update_step(tx: optax.GradientTransformation):
  """One update: ``(params, state, grads) -> (params, state)``."""

  def step(params: Any, state: Any, grads: Any) -> tuple[Any, Any]:
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  return step


def _loop(
    candidate: _optimizers.Candidate, shapes: Any, steps_per_call: int
) -> _stepping.DonatedLoop:
  params = candidate.wrap_params(_models.random_tree(shapes, 0, 0.05))
  grads = _models.random_tree(shapes, 1, 1e-3)
  tx = candidate.make()
  return _stepping.DonatedLoop(
      update_step(tx), (params, tx.init(params)), (grads,),
      steps_per_call=steps_per_call)


def measure_group(
    group: Sequence[_optimizers.Candidate],
    shapes: Any,
    *,
    steps_per_call: int,
    repeats: int,
) -> list[UpdateRow]:
  """Times a group interleaved on params of the given shapes.

  Each timed call runs ``steps_per_call`` (two or more whole periods)
  updates, so the per-step medians include the anchor refreshes.
  """
  loops = {c.name: _loop(c, shapes, steps_per_call) for c in group}
  seconds = _timing.median_seconds_per_step(
      {name: loop for name, loop in loops.items()},
      steps_per_call=steps_per_call, repeats=repeats)
  buffer_bytes = 4 * _models.num_params(shapes)
  baseline = group[0]
  rows = []
  for candidate in group:
    loop = loops[candidate.name]
    rows.append(UpdateRow(
        num_params=_models.num_params(shapes),
        optimizer=candidate.name,
        baseline=baseline.name,
        seconds=seconds[candidate.name],
        ratio=seconds[candidate.name] / seconds[baseline.name],
        ideal_ratio=candidate.ideal_streams / baseline.ideal_streams,
        ideal_streams=candidate.ideal_streams,
        hlo_streams=loop.hlo_streams(buffer_bytes),
        bytes_per_second=(
            candidate.ideal_streams * buffer_bytes / seconds[candidate.name]),
        # Lookahead's slow params are optimizer memory too.
        state_bytes=_stepping.tree_bytes(loop.carry) - buffer_bytes,
        temp_bytes=loop.temp_bytes(),
    ))
  return rows


def measure(shapes: Any, *, steps_per_call: int, repeats: int
            ) -> list[UpdateRow]:
  """All update groups on params of the given shapes.

  Only one group's buffers are alive at a time.
  """
  return [
      row
      for group in _optimizers.UPDATE_GROUPS
      for row in measure_group(
          group, shapes, steps_per_call=steps_per_call, repeats=repeats)
  ]
