"""Running the study or its pilot in several processes, one per CPU core.

A sweep trains its configurations in one process that keeps a single core
busy (its steps are too small for XLA to spread over two), so on a machine
with two cores the study runs twice as fast in two processes. The parent
starts ``workers`` copies of its own command, each with ``--claims DIR``;
each copy takes the next job (a cell of the study, a ladder of the pilot)
that no other has claimed, by creating the job's file in ``DIR``, until all
are taken. The jobs share the checkpoint directory, so the parent then
runs the whole study again in its own process, reading every finished
sweep from disk, and writes the report.
"""

from collections.abc import Callable, Sequence
import os
import shutil
import subprocess
import sys
import tempfile


def claimer(directory: str) -> Callable[[str], bool]:
  """``claim(job)``: True for the first process to ask for ``job``."""

  def claim(job: str) -> bool:
    try:
      fd = os.open(
        os.path.join(directory, job), os.O_CREAT | os.O_EXCL | os.O_WRONLY
      )
    except FileExistsError:
      return False
    os.close(fd)
    return True

  return claim


def run(argv: Sequence[str], workers: int, scratch: str) -> None:
  """Runs ``python -m examples.study *argv`` in ``workers`` processes.

  Each gets ``--claims`` (a fresh directory in ``scratch``) and
  ``--worker-index``; raises ``RuntimeError`` if any of them fails.
  """
  os.makedirs(scratch, exist_ok=True)
  claims = tempfile.mkdtemp(prefix="claims-", dir=scratch)
  processes = [
    subprocess.Popen(
      [
        sys.executable,
        "-m",
        "examples.study",
        *argv,
        "--claims",
        claims,
        "--worker-index",
        str(index),
      ]
    )
    for index in range(workers)
  ]
  failed = [p.args for p in processes if p.wait() != 0]
  shutil.rmtree(claims, ignore_errors=True)
  if failed:
    raise RuntimeError(
      f"{len(failed)} of {workers} workers failed; rerun the same command"
      " to resume from the checkpoints"
    )
