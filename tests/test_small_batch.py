"""The story that ``make demo`` runs (examples/small_batch.py).

It runs end to end on a small setting, and its learning rates are the ones
the study picked (docs/results/study.json, digits, batch 8, seed set A).
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
    tunings = json.load(f)["tunings"]
  picked = {
    t["method"]: t["rates"][t["sets"]["A"]["picked"]]
    for t in tunings
    if t["task"] == "digits" and t["batch_size"] == story.BATCH_SIZE
  }
  epochs = {
    t["epochs"]
    for t in tunings
    if t["task"] == "digits" and t["batch_size"] == story.BATCH_SIZE
  }
  assert epochs == {story.EPOCHS}
  assert {
    name: picked[name] for name in story.LEARNING_RATES
  } == story.LEARNING_RATES


def test_the_story_imports_no_other_example():
  imported = helpers.imported_packages(pathlib.Path(story.__file__))
  assert "optax_prox" in imported and "examples" not in imported
