"""The held-out evaluation the anchor examples share, on known answers.

``examples/anchors_lib/evaluation.py``, used by examples/finetune_l2sp.py
and examples/federated_fedprox.py.
"""

import math

import numpy as np

from examples.anchors_lib import evaluation


def test_held_out_concatenates_padded_chunks_and_says_where():
  x = np.arange(8, dtype=np.float32)[:, None]
  y = np.zeros(8, np.int32)
  chunks, parts = evaluation.held_out(
    {"a": (x[:3], y[:3]), "b": (x[3:], y[3:])}, chunk=2
  )
  assert parts == (("a", 0, 2), ("b", 2, 5))
  assert chunks[0].shape == (5, 2, 1) and chunks[1].shape == (5, 2)
  np.testing.assert_array_equal(chunks[2].sum(axis=1), [2, 1, 2, 2, 1])


def test_evaluate_gives_each_split_its_mean_loss_and_accuracy():
  eye = np.eye(3, dtype=np.float32)
  splits = {
    "a": (eye[[0, 1, 2]], np.array([0, 1, 0], np.int32)),  # 2 of 3 right
    "b": (eye[[1, 1]], np.array([1, 1], np.int32)),  # both right
  }
  chunks, parts = evaluation.held_out(splits, chunk=2)
  results = evaluation.evaluate(lambda x: x, chunks, parts)
  right = -math.log(math.e / (math.e + 2))
  wrong = -math.log(1 / (math.e + 2))
  np.testing.assert_allclose(results["a"][1], 2 / 3, rtol=1e-6)
  np.testing.assert_allclose(results["b"][1], 1.0)
  np.testing.assert_allclose(
    results["a"][0], (2 * right + wrong) / 3, rtol=1e-5
  )
  np.testing.assert_allclose(results["b"][0], right, rtol=1e-5)
