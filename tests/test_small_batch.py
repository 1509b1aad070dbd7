"""The story that ``make demo`` runs (examples/small_batch.py).

It runs end to end on a small setting, and its learning rates are the ones
the study picked (docs/results/study.json, digits, batch 8).
"""

import json
import os
import pathlib

import numpy as np
import pytest

from examples import small_batch as story
from tests import helpers

STUDY = os.path.join(
  os.path.dirname(__file__), "..", "docs", "results", "study.json"
)


@pytest.mark.optax_not_strict  # optax's Adam and piecewise schedule
def test_the_story_trains_four_optimizers_and_draws_a_figure(
  tmp_path, parsed_digits
):
  histories = story.main(
    [
      "--epochs",
      "1",
      "--seeds",
      "1",
      "--train-size",
      "400",
      "--out",
      str(tmp_path),
    ]
  )
  assert list(histories) == ["SGD", "TRSGD", "Adam", "TRAdam"]
  for history in histories.values():
    assert history.shape == (1, 1) and np.all(np.isfinite(history))
    assert history[0, 0] > 0.15  # chance is 0.10
  assert (tmp_path / "small_batch.png").stat().st_size > 0


def test_the_story_uses_the_rates_and_epochs_the_study_picked():
  with open(STUDY) as f:
    cells = json.load(f)["cells"]
  cell = next(
    c
    for c in cells
    if (c["task"], c["batch_size"]) == ("digits", story.BATCH_SIZE)
  )
  assert cell["epochs"] == story.EPOCHS
  picked = {m: r["tune"]["picked"] for m, r in cell["methods"].items()}
  assert picked == story.LEARNING_RATES


def test_the_story_imports_no_other_example():
  imported = helpers.imported_packages(pathlib.Path(story.__file__))
  assert "optax_prox" in imported and "examples" not in imported
