"""The machinery of the anchor examples, on inputs with known answers.

Verdicts, held-out evaluation, the picks, tables and figures of
``examples/anchors_lib`` (used by examples/finetune_l2sp.py and
examples/federated_fedprox.py).
"""

import dataclasses
import json
import math

import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest

from examples.anchors_lib import evaluation
from examples.anchors_lib import fedprox
from examples.anchors_lib import l2sp
from examples.anchors_lib import output
from examples.anchors_lib import verdicts

# t_{0.975}(2) / sqrt(3) and t_{0.95}(2) / sqrt(3): the half-widths of the
# 95% and 90% intervals of three differences with standard deviation 1.
HALF95, HALF90 = 2.4841377117503303, 1.6858544608470485


def difference(low: float, high: float, low90=None, high90=None):
  low90 = low if low90 is None else low90
  high90 = high if high90 is None else high90
  return verdicts.Difference((low + high) / 2, low, high, low90, high90, 3)


# ------------------------------------------------------------ verdicts ----


def test_paired_gives_the_95_and_90_percent_t_intervals():
  d = verdicts.paired([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
  assert (d.mean, d.n) == (2.0, 3)
  np.testing.assert_allclose([d.low, d.high], [2 - HALF95, 2 + HALF95])
  np.testing.assert_allclose([d.low90, d.high90], [2 - HALF90, 2 + HALF90])


def test_paired_with_one_seed_has_no_interval():
  d = verdicts.paired([1.0], [0.0])
  assert d.mean == 1.0 and math.isinf(d.low) and math.isinf(d.high90)


@pytest.mark.parametrize(
  ("sets", "expected"),
  [
    ([(0.5, 2.0), (0.1, 3.0)], "win"),
    ([(-2.0, -0.5), (-3.0, -0.1)], "loss"),
    ([(-0.5, 0.5), (-0.9, 0.8)], "equivalent"),
    ([(0.5, 2.0), (-0.1, 3.0)], "inconclusive"),  # one set only
    ([(0.5, 2.0), (-3.0, -0.1)], "inconclusive"),  # opposite sides
    ([(-0.5, 1.5), (-0.5, 0.5)], "inconclusive"),  # outside the margin
    ([(0.2, 0.4), (0.1, 0.3)], "win"),  # small but measured
  ],
)
def test_word_states_only_what_both_sets_support(sets, expected):
  assert verdicts.word([difference(*s) for s in sets], 1.0) == expected


def test_equivalence_reads_the_90_percent_intervals():
  inside90 = difference(-1.5, 1.5, -0.9, 0.9)
  outside90 = difference(-1.5, 1.5, -1.1, 0.9)
  assert verdicts.word([inside90, inside90], 1.0) == "equivalent"
  assert verdicts.word([inside90, outside90], 1.0) == "inconclusive"


def test_replicated_pairs_each_set_separately():
  a = {"A": [1.0, 2.0, 3.0], "B": [5.0, 6.0, 7.0]}
  b = {"A": [0.0, 0.0, 0.0], "B": [0.0, 1.0, 2.0]}
  v = verdicts.replicated(("ours", "theirs"), a, b, margin=1.0)
  assert (v.a, v.b, v.margin) == ("ours", "theirs", 1.0)
  assert v.sets["A"].mean == 2.0 and v.sets["B"].mean == 5.0
  assert v.sets["B"].low == v.sets["B"].high == 5.0  # no spread
  assert v.word == "inconclusive"  # A's interval includes 0


# ---------------------------------------------------------- evaluation ----


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


# ------------------------------------------------------- L2-SP report -----

L2SP_DESIGN = l2sp.Design({"A": (0, 1), "B": (2, 3)}, (0.1, 1.0, 10.0), 1, 1)


def l2sp_records() -> list[dict]:
  """Set A's validation prefers 0.1, set B's 1; test = 10 * strength."""
  records = []
  for part in (l2sp.SAME_HEAD, l2sp.NEW_HEAD):
    for seed in range(4):
      labels = (10, 50) if part == l2sp.SAME_HEAD else (10,)
      for c in l2sp.grid(L2SP_DESIGN, part, seed, labels):
        prefers = 0.1 if seed < 2 else 1.0
        score = 50 + 10 * c.strength + seed
        records.append(
          {
            **c._asdict(),
            "val": 90.0 if c.strength == prefers else 10.0,
            **{m: score for m in ("old", "new", "all")},
          }
        )
  pretrained = [
    l2sp.Config("pretrained", s, 0, "pretrained", 0.0) for s in range(4)
  ]
  records += [{**c._asdict(), "old": 95.0, "new": 0.0} for c in pretrained]
  return records


def test_grid_has_each_method_at_each_strength():
  same = l2sp.grid(L2SP_DESIGN, l2sp.SAME_HEAD, 7, (10, 50))
  assert len(same) == 2 * (1 + 3 + 3)
  assert {c.method for c in same} == {"plain", "L2", "L2-SP"}
  new = l2sp.grid(L2SP_DESIGN, l2sp.NEW_HEAD, 7, (10,))
  assert [c.method for c in new][:2] == ["scratch", "plain"]
  assert all(c.seed == 7 for c in same + new)


def test_each_seed_set_picks_its_own_strength_on_validation():
  picked = l2sp.pick(l2sp_records(), L2SP_DESIGN, l2sp.SAME_HEAD, 10, "L2-SP")
  assert picked.strengths == {"A": 0.1, "B": 1.0}
  assert picked.test["A"]["all"] == [51.0, 52.0]  # 50 + 10 * 0.1 + seed
  assert picked.test["B"]["old"] == [62.0, 63.0]  # 50 + 10 * 1 + seed


def test_summarise_compares_the_picks_paired_by_seed():
  picked, compared = l2sp.summarise(l2sp_records(), L2SP_DESIGN)
  assert [(p.labels, p.method) for p in picked][2:7] == [
    (10, "L2-SP"),
    (50, "plain"),
    (50, "L2"),
    (50, "L2-SP"),
    (10, "scratch"),
  ]
  found = {(part, v.a, v.b, metric): v for part, _, metric, v in compared}
  versus_plain = found[(l2sp.SAME_HEAD, "L2-SP", "plain", "all")]
  assert versus_plain.sets["A"].mean == pytest.approx(1.0)
  assert versus_plain.sets["B"].mean == pytest.approx(10.0)
  assert versus_plain.word == "win"  # the same gain on every seed
  assert (l2sp.NEW_HEAD, "plain", "scratch", "new") in found
  assert len(compared) == 2 * 3 * 3 + 4


def test_the_l2sp_page_and_figure_are_written(tmp_path):
  records = l2sp_records()
  text = l2sp.write(str(tmp_path), "cmd", 12.0, records, L2SP_DESIGN, [])
  assert "| 10 | L2-SP | 0.1† / 1 |" in text  # † an end of the grid
  assert "95.0 ± 0.0%" in text  # the pretrained models
  saved = json.loads((tmp_path / "l2sp.json").read_text())
  assert saved["seconds"] == 12.0 and len(saved["records"]) == len(records)
  height, width, _ = matplotlib.image.imread(tmp_path / "l2sp.png").shape
  assert 700 <= width <= 850 and height < width


# ----------------------------------------------------- FedProx report -----

FED_DESIGN = fedprox.Design({"A": (0, 1), "B": (2, 3)}, (5,), 4, (0.1, 1.0))


def fed_records() -> list[dict]:
  """Set A's validation prefers mu 0.1, B's mu 1; test = 70 + seed + bonus."""
  bonus = {fedprox.DROP: -2.0, fedprox.AVERAGE: 0.0}
  records = []
  for c in fedprox.grid(FED_DESIGN, 5):
    prefers = 0.1 if c.seed < 2 else 1.0
    best = c.mu == prefers and not c.method.startswith("FedAvg")
    test = 70.0 + c.seed + bonus.get(c.method, 10 * c.mu)
    records.append(
      {
        **c._asdict(),
        "test": [50.0] + [test] * 3,  # the last 3 rounds count
        "val": [50.0] + [90.0 if best else 80.0] * 3,
        "train_loss": [2.0, 1.0, 1.0, 1.0],
        "drift": [0.5, 0.25, 0.25, 0.25],
      }
    )
  return records


def test_the_federated_grid_has_both_fedavgs_and_each_mu():
  configs = fedprox.grid(FED_DESIGN, 5)
  assert len(configs) == 4 * (2 + 2)
  drops = [c for c in configs if c.drop]
  assert {c.method for c in drops} == {fedprox.DROP}
  assert all(c.mu == 0 for c in configs if c.method.startswith("FedAvg"))


def test_records_take_each_run_its_metrics_by_round():
  configs = fedprox.grid(FED_DESIGN, 5)[:2]
  evaluated = {
    "test": (np.zeros(2), np.array([0.5, 0.25])),
    "val": (np.zeros(2), np.array([0.5, 0.5])),
    "train": (np.array([1.5, 2.5]), np.zeros(2)),
  }
  drift = np.array([[1.0, 3.0], [0.0, 0.0]])  # (runs, clients)
  records = fedprox.records(configs, [(evaluated, drift)] * 3)
  assert records[0]["test"] == [50.0] * 3 and records[1]["test"] == [25.0] * 3
  assert records[1]["train_loss"] == [2.5] * 3
  assert records[0]["drift"] == [2.0] * 3  # the mean over clients
  assert records[0]["method"] == configs[0].method


def test_best_mu_is_picked_per_seed_set_on_validation():
  records = fed_records()
  picks = fedprox.best_mu(records, FED_DESIGN, 5)
  assert picks == {"A": "FedProx, mu=0.1", "B": "FedProx, mu=1"}
  best = fedprox.per_set(records, FED_DESIGN, 5, fedprox.BEST, "test")
  assert best == {"A": [71.0, 72.0], "B": [82.0, 83.0]}


def test_fedprox_comparisons_split_the_gain_into_its_two_parts():
  compared = fedprox.compare(fed_records(), FED_DESIGN)
  found = {(v.a, v.b): v for _, _, v in compared}
  partial = found[(fedprox.AVERAGE, fedprox.DROP)]
  assert partial.sets["A"].mean == pytest.approx(2.0)
  assert found[(fedprox.BEST, fedprox.AVERAGE)].sets["B"].mean == 10.0
  assert found[(fedprox.BEST, fedprox.DROP)].word == "win"
  assert len(compared) == 3 + len(FED_DESIGN.mus)


def test_the_fedprox_page_and_figure_are_written(tmp_path):
  text = fedprox.write(
    str(tmp_path), "cmd", 3.0, fed_records(), FED_DESIGN, [("x", "y")]
  )
  assert "FedProx, best mu (0.1 / 1)" in text
  assert "| x | y |" in text and "`cmd`" in text
  assert json.loads((tmp_path / "fedprox.json").read_text())["seconds"] == 3
  height, width, _ = matplotlib.image.imread(tmp_path / "fedprox.png").shape
  assert 700 <= width <= 850 and height >= 300


# ------------------------------------------------------------ output -----


@dataclasses.dataclass(frozen=True)
class Point:
  x: float
  labels: tuple[int, ...]


def test_jsonable_turns_dataclasses_and_tuples_into_json():
  value = {"p": Point(1.0, (2, 3)), 4: (Point(0.5, ()),)}
  assert output.jsonable(value) == {
    "p": {"x": 1.0, "labels": [2, 3]},
    "4": [{"x": 0.5, "labels": []}],
  }


def test_write_puts_the_page_and_the_record_side_by_side(tmp_path):
  paths = output.write(str(tmp_path / "new"), "s", "# page", {"a": (1,)})
  assert (tmp_path / "new" / "s.md").read_text() == "# page\n"
  assert json.loads((tmp_path / "new" / "s.json").read_text()) == {"a": [1]}
  assert paths["png"] == str(tmp_path / "new" / "s.png")


def test_header_names_the_command_its_time_and_the_machine():
  text = output.header("python -m x", 61.4, [("data", "digits")])
  assert "| command | `python -m x` |" in text
  assert "| wall time | 61 s |" in text and "| data | digits |" in text
  assert "jax" in text


def test_cells_read_as_set_a_slash_set_b():
  assert output.cell({"A": [1.0, 3.0], "B": [2.0, 2.0]}) == (
    "2.0 ± 1.0 / 2.0 ± 0.0"
  )
  assert output.cell({"A": jnp.array([0.5, 1.5])}, 2) == "1.00 ± 0.50"


def test_a_verdict_table_has_a_column_per_seed_set():
  v = verdicts.replicated(
    ("a", "b"),
    {"A": [1.0, 2.0, 3.0], "B": [1.0]},
    {"A": [0.0] * 3, "B": [0.0]},
    1.0,
  )
  text = output.verdict_table(["what"], [(["x"], v)])
  assert text.splitlines()[0] == "| what | set A | set B | verdict |"
  assert text.splitlines()[2] == (
    "| x | +2.0 [-0.5, +4.5] | +1.0 (1 seed) | inconclusive |"
  )
