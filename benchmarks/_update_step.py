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
  """The measured cost of one optimizer's update at one model size.

  ``seconds`` and ``ratio`` time one jitted call per update;
  ``scanned_seconds`` and ``scanned_ratio`` run a call's updates in one
  ``lax.scan``, which leaves out the per-call dispatch of ``num_arrays``
  donated arrays (params and optimizer state).
  """

  num_params: int
  optimizer: str
  baseline: str
  seconds: float
  ratio: _timing.Ratio
  scanned_seconds: float
  scanned_ratio: _timing.Ratio
  num_arrays: int
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
    candidate: _optimizers.Candidate,
    shapes: Any,
    steps_per_call: int,
    scanned: bool,
) -> _stepping.DonatedLoop:
  params = candidate.wrap_params(_models.random_tree(shapes, 0, 0.05))
  grads = _models.random_tree(shapes, 1, 1e-3)
  tx = candidate.make()
  return _stepping.DonatedLoop(
      update_step(tx), (params, tx.init(params)), (grads,),
      steps_per_call=steps_per_call, scanned=scanned)


def measure_group(
    group: Sequence[_optimizers.Candidate],
    shapes: Any,
    *,
    steps_per_call: int,
    repeats: int,
) -> list[UpdateRow]:
  """Times a group interleaved on params of the given shapes.

  Each timed call runs ``steps_per_call`` (two or more whole periods)
  updates, so the per-step medians include the anchor refreshes. Every
  candidate runs both as one call per update and scanned, all interleaved.
  """
  loops = {
      (c.name, scanned): _loop(c, shapes, steps_per_call, scanned)
      for c in group for scanned in (False, True)
  }
  baseline = group[0]
  timings = _timing.compare(
      loops, lambda key: (baseline.name, key[1]),
      steps_per_call=steps_per_call, repeats=repeats)
  buffer_bytes = 4 * _models.num_params(shapes)
  rows = []
  for candidate in group:
    loop = loops[candidate.name, False]
    one_call = timings[candidate.name, False]
    in_scan = timings[candidate.name, True]
    rows.append(UpdateRow(
        num_params=_models.num_params(shapes),
        optimizer=candidate.name,
        baseline=baseline.name,
        seconds=one_call.seconds,
        ratio=one_call.ratio,
        scanned_seconds=in_scan.seconds,
        scanned_ratio=in_scan.ratio,
        num_arrays=loop.num_arrays(),
        ideal_ratio=candidate.ideal_streams / baseline.ideal_streams,
        ideal_streams=candidate.ideal_streams,
        hlo_streams=loop.hlo_streams(buffer_bytes),
        bytes_per_second=(
            candidate.ideal_streams * buffer_bytes / in_scan.seconds),
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
