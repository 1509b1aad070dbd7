"""The study's report: markdown tables and the three figures."""

from typing import Any

import numpy as np

from examples.study_lib import methods as methods_lib


def pct(x: float) -> str:
  return f"{100 * x:.1f}"


def signed_interval(c: dict) -> str:
  if not np.isfinite(c["low"]):
    return f"{100 * c['mean']:+.1f} (1 seed)"
  return (
    f"{100 * c['mean']:+.1f} [{100 * c['low']:+.1f}, {100 * c['high']:+.1f}]"
  )


def accuracy_cell(summary: dict, name: str) -> str:
  s = summary["sets"][name]
  per_seed = np.asarray(s["test_accuracy_per_seed"])
  return f"{pct(per_seed.mean())} ± {pct(per_seed.std())}"


def headline_table(summaries: list[dict], set_names) -> str:
  """Batch size x method: test accuracy (set A) and the picked rates."""
  methods = list(dict.fromkeys(s["method"] for s in summaries))
  batch_sizes = sorted({s["batch_size"] for s in summaries})
  by_key = {(s["method"], s["batch_size"]): s for s in summaries}
  lines = [
    "| batch | " + " | ".join(methods) + " |",
    "|---:" + "|---" * len(methods) + "|",
  ]
  for b in batch_sizes:
    cells = []
    for m in methods:
      s = by_key.get((m, b))
      if s is None:
        cells.append("–")
        continue
      rate = " / ".join(
        f"{s['sets'][n]['picked_learning_rate']:.2g}" for n in set_names
      )
      edge = (
        " (edge)" if any(s["sets"][n]["at_edge"] for n in set_names) else ""
      )
      cells.append(f"{accuracy_cell(s, set_names[0])} @ {rate}{edge}")
    lines.append(f"| {b} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def verdict_table(comparisons: list[dict], set_names) -> str:
  lines = [
    "| batch | comparison | "
    + " | ".join(f"seeds {n}: mean [95% CI], verdict" for n in set_names)
    + " | replicated? |",
    "|---:|---|" + "---|" * len(set_names) + "---|",
  ]
  for c in comparisons:
    cells = " | ".join(
      f"{signed_interval(c['sets'][n])} {c['sets'][n]['verdict']}"
      for n in set_names
    )
    word = c["sets"][set_names[0]]["verdict"]
    replicated = f"yes ({word})" if c["replicated"] else "no"
    lines.append(
      f"| {c['batch_size']} | {c['method']} − {c['baseline']} |"
      f" {cells} | {replicated} |"
    )
  return "\n".join(lines)


def verdict_grid(comparisons: list[dict], set_names) -> str:
  """Comparison x batch size: the replicated verdict, or both words."""
  pairs = list(dict.fromkeys((c["method"], c["baseline"]) for c in comparisons))
  sizes = sorted({c["batch_size"] for c in comparisons})
  by_key = {
    (c["method"], c["baseline"], c["batch_size"]): c for c in comparisons
  }
  lines = [
    "| comparison | " + " | ".join(f"batch {b}" for b in sizes) + " |",
    "|---" + "|---" * len(sizes) + "|",
  ]
  for ours, theirs in pairs:
    cells = []
    for b in sizes:
      c = by_key.get((ours, theirs, b))
      if c is None:
        cells.append("–")
        continue
      words = [c["sets"][n]["verdict"] for n in set_names]
      mean = 100 * c["sets"][set_names[0]]["mean"]
      if c["replicated"] and words[0] != "tie":
        cells.append(f"**{words[0]}** ({mean:+.1f})")
      elif c["replicated"]:
        cells.append(f"tie ({mean:+.1f})")
      else:
        cells.append("/".join(words) + " (not replicated)")
    lines.append(f"| {ours} − {theirs} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def sensitivity_table(result: dict) -> str:
  ratios = result["lambda_w_over_eta0"]
  lines = [
    "| period \\ λw/η0 | " + " | ".join(f"{r:g}" for r in ratios) + " |",
    "|---:" + "|---:" * len(ratios) + "|",
  ]
  for period, row, spread in zip(
    result["periods"], result["test_accuracy_mean"], result["test_accuracy_std"]
  ):
    lines.append(
      f"| {period} | "
      + " | ".join(f"{pct(a)} ± {pct(s)}" for a, s in zip(row, spread))
      + " |"
    )
  return "\n".join(lines)


def movement(summaries: list[dict], set_names) -> dict:
  """How much the picked test accuracy and rate move between seed sets."""
  if len(set_names) < 2:
    return {}
  a, b = set_names[:2]
  gaps = [
    abs(
      np.mean(s["sets"][a]["test_accuracy_per_seed"])
      - np.mean(s["sets"][b]["test_accuracy_per_seed"])
    )
    for s in summaries
  ]
  same_rate = sum(
    s["sets"][a]["picked"] == s["sets"][b]["picked"] for s in summaries
  )
  return {
    "mean_abs_gap_points": 100 * float(np.mean(gaps)),
    "max_abs_gap_points": 100 * float(np.max(gaps)),
    "same_picked_rate": int(same_rate),
    "tunings": len(summaries),
  }


# --------------------------------------------------------------------------
# Figures.
# --------------------------------------------------------------------------


def pyplot() -> Any:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  return plt


def save(plt, figure, path: str) -> None:
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def stats_of(summary: dict, name: str) -> tuple[float, float]:
  per_seed = 100 * np.asarray(summary["sets"][name]["test_accuracy_per_seed"])
  return per_seed.mean(), per_seed.std()


def plot_batch_sizes(path: str, summaries: list[dict], set_names) -> None:
  """Test accuracy at the picked rate against the batch size, per task."""
  plt = pyplot()
  tasks = list(dict.fromkeys(s["task"] for s in summaries))
  figure, axes = plt.subplots(
    1, len(tasks), figsize=(6.5 * len(tasks), 4.8), squeeze=False
  )
  for ax, task in zip(axes[0], tasks):
    rows = [s for s in summaries if s["task"] == task]
    for index, method in enumerate(dict.fromkeys(s["method"] for s in rows)):
      mine = sorted(
        (s for s in rows if s["method"] == method),
        key=lambda s: s["batch_size"],
      )
      sizes = [s["batch_size"] for s in mine]
      color = f"C{index}"
      style = "-" if method in methods_lib.TR_NAMES else "--"
      for k, name in enumerate(set_names):
        means, stds = zip(*(stats_of(s, name) for s in mine))
        ax.errorbar(
          np.array(sizes) * (1.04 if k else 1),
          means,
          yerr=stds if not k else None,
          color=color,
          linestyle=style if not k else ":",
          marker="o" if not k else "x",
          capsize=3,
          alpha=1 if not k else 0.6,
          label=method if not k else None,
        )
    ax.set_xscale("log", base=2)
    sizes = sorted({s["batch_size"] for s in rows})
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.minorticks_off()
    ax.set_xlabel("batch size")
    ax.set_ylabel("test accuracy at the tuned rate (%)")
    ax.set_title(task)
    ax.legend(fontsize=8)
  figure.suptitle(
    "Each method at its validation-tuned rate: seed set "
    f"{set_names[0]} (mean ± std, solid/dashed)"
    + (f", seed set {set_names[1]} (x, dotted)" if len(set_names) > 1 else ""),
    fontsize=10,
  )
  save(plt, figure, path)


def plot_ablation(path: str, summaries: list[dict], set_names) -> None:
  """Each family's four variants (plain, decay, pull, both) per batch size."""
  plt = pyplot()
  families = [
    f
    for f, names in methods_lib.ABLATION.items()
    if any(s["method"] == names[1] for s in summaries)
  ]
  figure, axes = plt.subplots(
    1,
    max(1, len(families)),
    figsize=(6.5 * max(1, len(families)), 4.5),
    squeeze=False,
  )
  for ax, family in zip(axes[0], families):
    names = methods_lib.ABLATION[family]
    sizes = sorted(
      {s["batch_size"] for s in summaries if s["method"] == names[1]}
    )
    by_key = {(s["method"], s["batch_size"]): s for s in summaries}
    width = 0.8 / len(names)
    for j, name in enumerate(names):
      points = [
        stats_of(by_key[name, b], set_names[0])
        if (name, b) in by_key
        else (np.nan, np.nan)
        for b in sizes
      ]
      means, stds = zip(*points)
      ax.bar(
        np.arange(len(sizes)) + (j - 1.5) * width,
        means,
        width,
        yerr=stds,
        capsize=2,
        label=name,
      )
    ax.set_xticks(np.arange(len(sizes)), [f"batch {b}" for b in sizes])
    low = min(
      stats_of(s, set_names[0])[0]
      for s in summaries
      if s["method"] in names and s["batch_size"] in sizes
    )
    ax.set_ylim(max(0, low - 8), None)
    ax.set_ylabel("test accuracy at the tuned rate (%)")
    ax.set_title(f"{family}: which ingredient of TR does the work?")
    ax.legend(fontsize=8)
  save(plt, figure, path)


def plot_sensitivity(path: str, results: list[dict]) -> None:
  """Heatmaps of test accuracy over period x lambda_w / eta_0."""
  plt = pyplot()
  figure, axes = plt.subplots(
    1,
    max(1, len(results)),
    figsize=(5.5 * max(1, len(results)), 4.5),
    squeeze=False,
  )
  for ax, result in zip(axes[0], results):
    grid = 100 * np.asarray(result["test_accuracy_mean"])
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(
      range(grid.shape[1]), [f"{r:g}" for r in result["lambda_w_over_eta0"]]
    )
    ax.set_yticks(range(grid.shape[0]), [str(p) for p in result["periods"]])
    ax.set_xlabel("lambda_w / eta_0")
    ax.set_ylabel("period S")
    for i in range(grid.shape[0]):
      for j in range(grid.shape[1]):
        ax.text(
          j,
          i,
          f"{grid[i, j]:.1f}",
          ha="center",
          va="center",
          color="white" if grid[i, j] < grid.mean() else "black",
          fontsize=8,
        )
    if 10 in result["periods"] and 0.1 in result["lambda_w_over_eta0"]:
      default = (
        result["periods"].index(10),
        result["lambda_w_over_eta0"].index(0.1),
      )
      ax.add_patch(
        plt.Rectangle(
          (default[1] - 0.5, default[0] - 0.5),
          1,
          1,
          fill=False,
          edgecolor="red",
          linewidth=2,
        )
      )
    plain = result.get("plain")
    ax.set_title(
      f"{result['method']}, batch {result['batch_size']},"
      f" lr {result['learning_rate']:.2g}"
      + (
        f"\n(red: the default; {plain['method']} at its tuned"
        f" rate: {100 * plain['test_accuracy']:.1f}%)"
        if plain
        else ""
      ),
      fontsize=10,
    )
    figure.colorbar(image, ax=ax, label="test accuracy (%)")
  save(plt, figure, path)
