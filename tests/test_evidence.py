"""The shared evidence module (examples/evidence.py), on known answers.

* One interval, one word: no verdict contradicts its interval.
* The t-interval and Holm's levels against hand-computed values.
* The planned power against a simulation of the very rule it predicts.
* The sign-test interval's order statistics, and its indifference to an
  outlier that stretches a t-interval.
* The bootstrap, the workers, the template and the marked blocks.
"""

import dataclasses
import math
import os

import jax
import numpy as np
import pytest
import scipy.stats

from examples import evidence

NAMES = ("x", "y", "here")


@pytest.mark.parametrize(
  "low, high, word",
  [
    (0.1, 2.0, "win"),
    (-2.0, -0.1, "loss"),
    (-0.4, 0.4, "equivalent"),
    (-0.6, 0.4, "inconclusive"),
    (0.1, 0.3, "win"),  # measured, if small: the interval says how small
    (-0.5, 0.2, "inconclusive"),  # the margin itself is outside
  ],
)
def test_the_word_is_what_its_interval_says(low, high, word):
  assert evidence.verdict(low, high, margin=0.5) == word


def test_the_t_interval_and_test_on_fixed_inputs():
  # Differences 1..5: mean 3, sd sqrt(2.5), t_0.975(4) = 2.7764451.
  c = evidence.compare([1, 2, 3, 4, 5], [0] * 5, names=NAMES, margin=0.5)
  half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)
  assert (c.mean, c.n, c.word, c.level) == (3.0, 5, "win", 0.95)
  assert c.low == pytest.approx(3 - half) and c.high == pytest.approx(3 + half)
  assert c.sd == pytest.approx(math.sqrt(2.5))
  assert c.p == pytest.approx(
    scipy.stats.ttest_rel([1, 2, 3, 4, 5], [0] * 5)[1]
  )
  tie = evidence.compare([1.5, -0.5, 1.5, -0.5], [0] * 4, names=NAMES,
                         margin=0.5)  # fmt: skip
  assert tie.word == "inconclusive" and tie.low < 0 < tie.high


def comparison(p: float, mean: float = 1.0, sd: float = 1.0, n: int = 10):
  return evidence.Comparison(
    *NAMES, "primary", mean, sd, n, p, 0.95, 0.0, 0.0, 0.5, "", None
  )


def test_holm_steps_down_until_the_first_hypothesis_it_keeps():
  family = [comparison(0.04), comparison(0.001), comparison(0.03)]
  levels = [c.level for c in evidence.holm(family)]
  # p sorted: 0.001 <= 0.05/3 rejected; 0.03 > 0.05/2 kept, and with it
  # every later one at that level.
  assert levels == pytest.approx([1 - 0.025, 1 - 0.05 / 3, 1 - 0.025])


def test_holm_calls_a_win_exactly_when_it_rejects():
  rng = np.random.default_rng(0)
  family = [
    evidence.compare(rng.normal(shift, 1, 12), np.zeros(12), names=NAMES,
                     margin=0.5, family="primary")
    for shift in (0.0, 0.3, 0.6, 0.9, 1.2, 1.5)
  ]  # fmt: skip
  corrected = evidence.holm(family)
  p = sorted(c.p for c in family)
  rejected = 0
  while rejected < len(p) and p[rejected] <= 0.05 / (len(p) - rejected):
    rejected += 1
  decided = [c for c in corrected if c.word in ("win", "loss")]
  assert len(decided) == rejected >= 1
  for before, after in zip(family, corrected):
    assert after.low <= before.low and after.high >= before.high
    assert after.mean == before.mean


def test_the_planned_power_matches_a_simulation_of_the_rule():
  rng = np.random.default_rng(1)
  n, sd, margin, alpha = 16, 0.5, 0.45, 0.05
  draws = rng.normal(0, sd, (20000, n))
  mean, sem = draws.mean(1), draws.std(1, ddof=1) / math.sqrt(n)
  t = scipy.stats.t.ppf(1 - alpha / 2, n - 1)
  simulated = np.mean((mean - t * sem > -margin) & (mean + t * sem < margin))
  assert evidence.power(n, sd, margin, alpha) == pytest.approx(
    simulated, abs=0.05
  )


def test_the_seeds_for_power_are_the_fewest_that_reach_it():
  n = evidence.seeds_for(0.55, 0.5, 0.05 / 16, most=64)
  assert evidence.power(n, 0.55, 0.5, 0.05 / 16) >= 0.8
  assert evidence.power(n - 1, 0.55, 0.5, 0.05 / 16) < 0.8
  assert evidence.seeds_for(5.0, 0.5, 0.05, most=32) == 32  # out of reach
  margin = evidence.margin_for(5.0, 32, 0.05)
  assert evidence.power(32, 5.0, margin, 0.05) == pytest.approx(0.8)


def test_a_plan_keeps_a_reachable_margin_and_widens_one_out_of_reach():
  kept = evidence.plan(0.55, 0.5, 0.01, most=64, least=3, step=0.25)
  assert kept["margin"] == 0.5
  assert kept["seeds"] == evidence.seeds_for(0.55, 0.5, 0.01, most=64)
  wide = evidence.plan(5.0, 0.5, 0.01, most=8, least=3, step=0.5)
  assert wide["seeds"] == 8 and wide["margin"] % 0.5 == 0
  assert wide["power"] >= 0.8  # the widened margin is reached ...
  assert evidence.power(8, 5.0, wide["margin"] - 0.5, 0.01) < 0.8  # ... just


def test_the_sign_test_interval_is_a_pair_of_order_statistics():
  diff = np.arange(1.0, 17.0)  # 16 differences 1..16
  c = evidence.median_comparison(diff, np.zeros(16), names=NAMES, margin=0.5)
  # P(Binomial(16, 1/2) <= 3) = 0.0106 <= 0.025 < P(<= 4) = 0.0384: the
  # interval runs from the 4th smallest to the 4th largest.
  assert (c.low, c.high, c.mean) == (4.0, 13.0, 8.5)
  assert c.word == "win" and c.p == pytest.approx(2 * 0.5**16)
  # One diverged run stretches the t-interval across 0, not this one.
  diff[0] = -90.0
  assert evidence.median_comparison(diff, np.zeros(16), names=NAMES,
                                    margin=0.5).word == "win"  # fmt: skip
  assert evidence.compare(diff, np.zeros(16), names=NAMES,
                          margin=0.5).word == "inconclusive"  # fmt: skip


def test_the_bootstrap_interval_holds_the_estimate_and_repeats():
  rng = np.random.default_rng(2)
  a, b = rng.normal(1, 1, 20), rng.normal(0, 1, 20)
  statistic = lambda x, y: float(np.mean(x - y))
  low, high = evidence.bootstrap(statistic, a, b)
  assert low < statistic(a, b) < high
  assert evidence.bootstrap(statistic, a, b) == (low, high)


def compilation_cache(_) -> str:
  """The worker's persistent compilation cache directory."""
  return jax.config.jax_compilation_cache_dir


def test_jobs_on_two_workers_come_back_in_order_computed_on_one_thread():
  assert evidence.run_jobs(math.sqrt, [16.0, 4.0, 9.0], workers=2) == [4, 2, 3]
  flags = evidence.run_jobs(os.getenv, ["XLA_FLAGS"], workers=2)[0]
  assert "--xla_cpu_multi_thread_eigen=false" in flags.split()
  caches = evidence.run_jobs(compilation_cache, range(4), workers=2)
  assert len(set(caches)) == 1 and caches[0]  # one, shared by the workers
  assert not os.path.exists(caches[0])  # and removed after the run


def test_the_template_fails_on_a_name_the_record_lacks(tmp_path):
  template = tmp_path / "page.md.j2"
  template.write_text("{{ c.mean|signed }} {{ c|interval(2) }} {{ missing }}")
  c = dataclasses.asdict(comparison(0.01, mean=-1.25))
  with pytest.raises(Exception, match="missing"):
    evidence.render(str(template), {"c": c})
  assert evidence.render(str(template), {"c": c, "missing": "!"}) == (
    "\N{MINUS SIGN}1.2 [+0.00, +0.00] !"
  )


def test_a_marked_block_is_replaced_and_the_rest_kept():
  page = "a\n<!-- summary: made -->\nold\n<!-- end of summary -->\nz\n"
  assert evidence.replace_block(page, "summary", "new") == (
    "a\n<!-- summary: made -->\nnew\n<!-- end of summary -->\nz\n"
  )
  assert evidence.words(["a", "b", "c"]) == "a, b and c"
