r"""Evidence: paired comparisons, their verdicts and power, and the pages.

Shared by the study (``examples/study.py``) and the anchor stories
(``examples/finetune_l2sp.py``, ``examples/federated_fedprox.py``):

* :func:`compare`: ``a - b`` paired by seed, with one t-interval and the
  one verdict that interval supports (:func:`verdict`);
* :func:`holm`: the same comparisons with their intervals widened to
  Holm's step-down levels, for a declared family;
* :func:`power` and :func:`seeds_for`: the chance that a true difference of
  0 is called equivalent, and the seeds that make it at least 80%;
* :func:`median_comparison`: a sign-test interval on the median
  difference, for outcomes with outliers (diverged runs);
* :func:`bootstrap`: a seed-bootstrap interval (``scipy.stats.bootstrap``);
* :func:`run_jobs`: jobs on worker processes (``concurrent.futures``);
* :func:`render` and :func:`replace_block`: the pages, from a jinja2
  template and a record.

A verdict is read off a single interval at a stated level: **win** where
it lies above 0, **loss** where below, **equivalent** where it lies
inside ``±margin`` (two one-sided tests, each at half the interval's
error rate), **inconclusive** otherwise. So no label can contradict its
own interval.
"""

import argparse
from collections.abc import Callable, Iterable, Sequence
import concurrent.futures
import dataclasses
import math
import multiprocessing
import os
import tempfile
from typing import Any

import jinja2
import numpy as np
import scipy.stats
import tqdm

ALPHA = 0.05  # the error rate of a verdict (of a family, with Holm)
POWER = 0.8  # the planned chance of "equivalent" when nothing differs


def verdict(low: float, high: float, margin: float) -> str:
  """The word an interval ``[low, high]`` supports, as in the docstring.

  Args:
    low: the interval's lower end.
    high: its upper end.
    margin: the equivalence margin, fixed before the run.

  Returns:
    "win", "loss", "equivalent" or "inconclusive".
  """
  if low > 0:
    return "win"
  if high < 0:
    return "loss"
  if -margin < low and high < margin:
    return "equivalent"
  return "inconclusive"


@dataclasses.dataclass(frozen=True)
class Comparison:
  """``a - b`` paired by seed, its interval and its verdict.

  Attributes:
    a, b: what is compared (for the page).
    where: the setting it is measured in (a cell of the study).
    family: "primary" (declared before the run, Holm-corrected) or
      "secondary".
    mean: the mean difference; ``sd`` its standard deviation (n - 1).
    n: the number of paired seeds.
    p: the two-sided p-value of no difference (paired t-test).
    level: the interval's confidence level.
    low, high: the interval.
    margin: the equivalence margin.
    word: the verdict (:func:`verdict`).
    power: the planned chance of "equivalent" were the true difference 0.
  """

  a: str
  b: str
  where: str
  family: str
  mean: float
  sd: float
  n: int
  p: float
  level: float
  low: float
  high: float
  margin: float
  word: str
  power: float | None = None


def t_interval(
  mean: float, sd: float, n: int, level: float
) -> tuple[float, float]:
  """The t-interval at ``level`` of a mean of ``n`` values of sd ``sd``.

  Infinite with fewer than 2 values or an undefined ``sd``.
  """
  if n < 2 or not math.isfinite(sd):
    return -math.inf, math.inf
  half = float(scipy.stats.t.ppf((1 + level) / 2, n - 1)) * sd / math.sqrt(n)
  return mean - half, mean + half


def compare(
  a: Sequence[float],
  b: Sequence[float],
  *,
  names: tuple[str, str, str],
  margin: float,
  family: str = "secondary",
  level: float = 1 - ALPHA,
  power: float | None = None,
) -> Comparison:
  r"""``a - b`` paired by seed, with a t-interval and its verdict.

  .. math::
    \bar d \pm t_{(1+\text{level})/2,\,n-1}\, s_d / \sqrt{n}

  Args:
    a: one value per seed.
    b: the paired values, in the same seed order.
    names: ``(a, b, where)`` for the page.
    margin: the equivalence margin.
    family: "primary" or "secondary".
    level: the interval's confidence level (:func:`holm` sets it for a
      family).
    power: the planned power, recorded beside the verdict.

  Returns:
    The :class:`Comparison`.

  >>> c = compare([2.0, 3.0, 4.0], [1.0, 1.0, 1.0], names=("x", "y", "z"),
  ...             margin=0.5)
  >>> c.mean, round(c.low, 2), round(c.high, 2), c.word
  (2.0, -0.48, 4.48, 'inconclusive')
  """
  diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
  n, mean = len(diff), float(diff.mean())
  sd = float(diff.std(ddof=1)) if n > 1 else math.nan
  p = (
    float(scipy.stats.ttest_1samp(diff, 0.0).pvalue)
    if n > 1 and sd > 0
    else (0.0 if n > 1 and mean != 0 else 1.0)
  )
  low, high = t_interval(mean, sd, n, level)
  return Comparison(
    *names,
    family,
    mean,
    sd,
    n,
    p,
    level,
    low,
    high,
    margin,
    verdict(low, high, margin),
    power,
  )


def holm(comparisons: Sequence[Comparison], alpha: float = ALPHA):
  """The family's comparisons, each at its Holm step-down level.

  Sorted by p-value, the j-th (from 0) of m is tested at
  ``alpha / (m - j)`` while every earlier one rejected "no difference";
  from the first that does not, all later ones keep that level. Each
  interval is recomputed at ``1 - `` its level's alpha, so its verdict is
  Holm's decision (a win or loss is a rejection; the family-wise error
  rate of wins and losses is at most ``alpha``).

  Args:
    comparisons: the declared family, as :func:`compare` returned them.
    alpha: the family-wise error rate.

  Returns:
    The comparisons in their input order, with level, interval and word
    replaced.
  """
  m = len(comparisons)
  order = sorted(range(m), key=lambda i: comparisons[i].p)
  levels, stopped = [0.0] * m, None
  for rank, i in enumerate(order):
    step = alpha / (m - rank) if stopped is None else stopped
    if stopped is None and comparisons[i].p > step:
      stopped = step
    levels[i] = 1 - step
  corrected = []
  for c, level in zip(comparisons, levels):
    low, high = t_interval(c.mean, c.sd, c.n, level)
    word = verdict(low, high, c.margin)
    corrected.append(
      dataclasses.replace(c, level=level, low=low, high=high, word=word)
    )
  return corrected


def power(n: int, sd: float, margin: float, alpha: float = ALPHA) -> float:
  r"""The chance that a true difference of 0 is called equivalent.

  With ``n`` paired seeds of standard deviation ``sd``, the interval at
  level ``1 - alpha`` lies inside ``±margin`` when
  :math:`|\bar d| < \text{margin} - t_{1-\alpha/2,n-1}\, sd/\sqrt n`;
  treating ``sd`` as known, that has probability
  :math:`2\Phi(\text{margin}\sqrt n / sd - t) - 1`.

  Args:
    n: paired seeds.
    sd: the standard deviation of one paired difference.
    margin: the equivalence margin.
    alpha: one minus the interval's level.

  Returns:
    The power, in [0, 1].

  >>> round(power(16, 0.5, 0.5), 2)
  0.94
  """
  if n < 2:
    return 0.0
  if sd == 0:
    return 1.0
  t = scipy.stats.t.ppf(1 - alpha / 2, n - 1)
  below = scipy.stats.norm.cdf(margin * math.sqrt(n) / sd - t)
  return max(0.0, 2 * float(below) - 1)


def seeds_for(
  sd: float, margin: float, alpha: float, most: int, least: int = 3
) -> int:
  """The fewest seeds (from ``least`` to ``most``) with :func:`power` >= 0.8.

  Args:
    sd: the paired standard deviation, measured before the run.
    margin: the equivalence margin.
    alpha: one minus the interval's level.
    most: the most seeds the budget allows (returned when none suffices).
    least: the fewest seeds to use.

  Returns:
    The number of seeds.

  >>> seeds_for(0.5, 0.5, 0.05, most=64)
  13
  """
  for n in range(least, most + 1):
    if power(n, sd, margin, alpha) >= POWER:
      return n
  return most


def margin_for(sd: float, n: int, alpha: float) -> float:
  """The smallest margin that ``n`` seeds call equivalent with power 0.8.

  Args:
    sd: the paired standard deviation.
    n: the seeds.
    alpha: one minus the interval's level.

  Returns:
    The margin, in the unit of ``sd``.

  >>> round(margin_for(0.5, 13, 0.05), 2)
  0.48
  """
  t = scipy.stats.t.ppf(1 - alpha / 2, n - 1)
  return float(sd / math.sqrt(n) * (t + scipy.stats.norm.ppf((1 + POWER) / 2)))


def plan(
  sd: float, margin: float, alpha: float, most: int, least: int, step: float
) -> dict[str, float]:
  """A comparison's seeds and margin, fixed from tuning before it runs.

  The seeds are :func:`seeds_for`'s. Where even ``most`` seeds fall short
  of 80% power at ``margin``, the margin widens to the smallest multiple
  of ``step`` that they reach (:func:`margin_for`): "equivalent" then
  means within that wider margin, and the page says which margin a
  verdict used.

  Args:
    sd: the paired standard deviation, measured on the tuning seeds.
    margin: the margin declared before the run.
    alpha: one minus the interval's level.
    most: the most seeds the budget allows.
    least: the fewest seeds to use.
    step: the widened margin's unit.

  Returns:
    ``sd``, ``seeds``, ``margin`` and ``power`` (at that margin).

  >>> plan(2.0, 0.5, 0.05, most=32, least=3, step=0.25)["margin"]
  1.25
  """
  n = seeds_for(sd, margin, alpha, most, least)
  if power(n, sd, margin, alpha) < POWER:
    margin = math.ceil(margin_for(sd, n, alpha) / step) * step
  return {
    "sd": sd,
    "seeds": n,
    "margin": margin,
    "power": power(n, sd, margin, alpha),
  }


def median_comparison(
  a: Sequence[float],
  b: Sequence[float],
  *,
  names: tuple[str, str, str],
  margin: float,
  level: float = 1 - ALPHA,
) -> Comparison:
  """``a - b`` by its median, with the sign test's distribution-free interval.

  The interval runs from the k-th smallest to the k-th largest paired
  difference, with k the largest order that keeps its coverage at least
  ``level`` (Binomial(n, 1/2)); ``p`` is the two-sided sign test's
  (``scipy.stats.binomtest``, ties dropped). A diverged run is a large
  difference like any other, not one that widens a t-interval.

  Args:
    a: one value per seed.
    b: the paired values.
    names: ``(a, b, where)``.
    margin: the equivalence margin.
    level: the least coverage.

  Returns:
    The :class:`Comparison`, ``mean`` holding the median.

  >>> c = median_comparison([5.0] * 8, [1.0] * 7 + [9.0], names=("x", "y",
  ...                       "z"), margin=0.5)
  >>> c.mean, c.word, c.low, c.high
  (4.0, 'inconclusive', -4.0, 4.0)
  """
  diff = np.sort(np.asarray(a, np.float64) - np.asarray(b, np.float64))
  n = len(diff)
  k = int(scipy.stats.binom.ppf((1 - level) / 2, n, 0.5))
  if scipy.stats.binom.cdf(k, n, 0.5) > (1 - level) / 2:
    k -= 1  # P(fewer than k+1 below the median) must stay within the tail
  low, high = (diff[k], diff[n - 1 - k]) if k >= 0 else (-math.inf, math.inf)
  nonzero = diff[diff != 0]
  p = (
    float(scipy.stats.binomtest(int((nonzero > 0).sum()), len(nonzero)).pvalue)
    if len(nonzero)
    else 1.0
  )
  return Comparison(
    *names,
    "secondary",
    float(np.median(diff)),
    float(diff.std(ddof=1)) if n > 1 else math.nan,
    n,
    p,
    level,
    float(low),
    float(high),
    margin,
    verdict(float(low), float(high), margin),
  )


def bootstrap(
  statistic: Callable[..., float], *samples: np.ndarray, level: float = 0.95
) -> tuple[float, float]:
  """A paired percentile bootstrap interval over seeds (first axes).

  Args:
    statistic: of the resampled arrays, a float.
    *samples: arrays whose first axis is the seed, resampled together.
    level: the interval's level.

  Returns:
    ``(low, high)``.
  """
  seeds = np.arange(len(samples[0]))
  result = scipy.stats.bootstrap(
    (seeds,),
    lambda rows: statistic(*(s[rows] for s in samples)),
    vectorized=False,
    n_resamples=999,
    confidence_level=level,
    method="percentile",
    rng=np.random.default_rng(0),
  )
  interval = result.confidence_interval
  return float(interval.low), float(interval.high)


def _worker(cache: str) -> None:
  """Sets up a worker process before its first job.

  Its XLA (not yet started) computes on one thread, and its compiled
  programs go to, and come from, the run's shared ``cache`` directory.
  """
  import jax  # noqa: PLC0415  (the parent need not import it)

  flags = os.environ.get("XLA_FLAGS", "")
  os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false"
  jax.config.update("jax_compilation_cache_dir", cache)


def run_jobs(
  job: Callable[[Any], Any],
  arguments: Sequence[Any],
  workers: int,
  on_done: Callable[[], None] = lambda: None,
) -> list[Any]:
  """``[job(a) for a in arguments]``, on ``workers`` spawned processes.

  With one worker everything runs here; with more, each argument goes to
  the next free process, whose XLA computes on one thread: the processes,
  not XLA's threads, share the cores. The processes share a temporary
  compilation cache, so that a program one has compiled, the others load.
  A progress bar counts finished jobs.

  Args:
    job: a function of the module level (it is pickled by name).
    arguments: one per job, longest first for the best packing.
    workers: the processes.
    on_done: called here after each job.

  Returns:
    The results, in the order of ``arguments``.
  """
  bar = tqdm.tqdm(total=len(arguments), unit="job", desc="jobs")
  if workers <= 1:
    results = []
    for argument in arguments:
      results.append(job(argument))
      bar.update()
      on_done()
    bar.close()
    return results
  context = multiprocessing.get_context("spawn")
  with (
    tempfile.TemporaryDirectory(prefix="jax-cache-") as cache,
    concurrent.futures.ProcessPoolExecutor(
      workers, context, initializer=_worker, initargs=(cache,)
    ) as pool,
  ):
    futures = [pool.submit(job, argument) for argument in arguments]
    for _ in concurrent.futures.as_completed(futures):
      bar.update()
      on_done()
  bar.close()
  return [future.result() for future in futures]


def signed(value: float, digits: int = 1) -> str:
  """``+1.2`` / ``−0.3`` (a true minus sign), for the pages."""
  text = f"{value:+.{digits}f}"
  return text.replace("-", "\N{MINUS SIGN}")


def interval(c: Any, digits: int = 1) -> str:
  """``[low, high]`` of a comparison (a dataclass or its dict), signed."""
  low, high = (c["low"], c["high"]) if isinstance(c, dict) else (c.low, c.high)
  return f"[{signed(low, digits)}, {signed(high, digits)}]"


def render(template: str, context: dict[str, Any]) -> str:
  """The page: ``template`` (a jinja2 file) rendered with ``context``.

  Undefined names fail (``StrictUndefined``); the filters ``signed`` and
  ``interval`` write numbers as the pages do.

  Args:
    template: the template's path.
    context: the names it uses.

  Returns:
    The text.
  """
  environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(os.path.dirname(template)),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
  )
  environment.filters |= {"signed": signed, "interval": interval}
  return environment.get_template(os.path.basename(template)).render(context)


def replace_block(page: str, name: str, block: str) -> str:
  """``page`` with the text between ``<!-- name -->`` markers replaced.

  Args:
    page: a markdown page holding ``<!-- name: ... -->`` and
      ``<!-- end of name -->``.
    name: the block's name.
    block: its new text.

  Returns:
    The page.
  """
  start = page.index(f"<!-- {name}")
  start = page.index("\n", start) + 1
  end = page.index(f"<!-- end of {name} -->")
  return page[:start] + block.strip() + "\n" + page[end:]


def words(items: Iterable[str]) -> str:
  """``a``, ``a and b``, ``a, b and c``: a list in a sentence."""
  items = list(items)
  if len(items) <= 1:
    return "".join(items) or "none"
  return ", ".join(items[:-1]) + " and " + items[-1]


def story_arguments(
  argv: Sequence[str] | None, description: str, out: str, block: str
) -> argparse.Namespace:
  """The anchor stories' command line: --quick, --out, --workers, --summary.

  Args:
    argv: the arguments (``None``: ``sys.argv[1:]``).
    description: the story's one-line summary.
    out: where its record, page and figures go by default.
    block: the name of the marked block that ``--summary`` pages hold.

  Returns:
    The parsed arguments (``--render``: only the pages, from OUT's record).
  """
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument("--quick", action="store_true", help="a smoke run")
  parser.add_argument("--out", default=out)
  parser.add_argument("--workers", type=int, default=1)
  parser.add_argument(
    "--summary", nargs="*", default=(), help=f"pages whose {block} is replaced"
  )
  parser.add_argument(
    "--render", action="store_true", help="only the pages, from OUT's record"
  )
  return parser.parse_args(argv)
