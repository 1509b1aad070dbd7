"""Two ``jax.distributed`` processes train exactly like one process.

Two processes of 4 simulated CPU devices each stand in for two hosts: they
run ``python -m examples.sharded_training --multi-host`` on localhost, with
every kernel (and its momentum and anchor) split over all 8 devices of both
processes (``--fsdp 8``) and every batch assembled from each process's share
with ``jax.make_array_from_process_local_data``. Process 0 writes the
losses; they must equal those of the same training in this process, on its
8 devices, up to float32 rounding: the two processes sum the loss and the
gradients over the batch in another order (1 ulp at the first step), while a
wrong share of a batch or a misplaced shard changes the losses by percents.
"""

import json
import os
from pathlib import Path
import socket
import subprocess
import sys
import time

import chex
import jax
import pytest

from examples import sharded_training
from tests import conftest

EXAMPLE = sharded_training.__name__  # run as python -m from the root
ROOT = Path(__file__).parents[1]
PROCESSES = 2
# A fresh process imports jax and flax and compiles the step in seconds; the
# limit only stops a hung coordinator from hanging the suite.
TIMEOUT_SECONDS = 120
STEPS = 6
# --fsdp 8 splits every kernel over the devices of both processes.
TRAINING = ["--steps", str(STEPS), "--fsdp", "8", "--batch-size", "32"]


def free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("localhost", 0))
    return probe.getsockname()[1]


def run_processes(directory: Path) -> list[str]:
  """Runs the example in two processes; returns their output.

  Kills both as soon as one fails, when the time limit passes, and when the
  test is interrupted.
  """
  env = {
    **os.environ,
    "JAX_PLATFORMS": "cpu",
    "XLA_FLAGS": conftest.xla_flags(conftest.DEVICE_COUNT // PROCESSES),
  }
  command = [
    sys.executable,
    "-m",
    EXAMPLE,
    *TRAINING,
    "--multi-host",
    "--num-processes",
    str(PROCESSES),
    "--coordinator-address",
    f"localhost:{free_port()}",
    "--losses-to",
    str(directory / "two_processes.json"),
  ]
  logs = [directory / f"process_{i}.log" for i in range(PROCESSES)]
  processes: list[subprocess.Popen[bytes]] = []
  try:
    for i, log in enumerate(logs):
      with open(log, "wb") as output:
        processes.append(
          subprocess.Popen(
            [*command, "--process-id", str(i)],
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
          )
        )
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while (
      any(p.poll() is None for p in processes)
      and not any(p.poll() for p in processes)  # none failed yet
      and time.monotonic() < deadline
    ):
      time.sleep(0.05)
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
        process.wait()
  outputs = [log.read_text() for log in logs]
  assert all(process.returncode == 0 for process in processes), (
    f"a process failed (a negative exit code: killed when another failed"
    f" or after {TIMEOUT_SECONDS} s)\n"
    + "\n".join(
      f"--- process {i} exited with {process.returncode}:\n{output}"
      for i, (process, output) in enumerate(zip(processes, outputs))
    )
  )
  return outputs


@pytest.mark.runs_long
def test_two_processes_train_like_one_process(
  tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
  assert jax.device_count() == conftest.DEVICE_COUNT
  outputs = run_processes(tmp_path)
  assert f"devices: 8 in {PROCESSES} process(es)" in outputs[0], outputs[0]
  two = json.loads((tmp_path / "two_processes.json").read_text())

  sharded_training.main(
    [*TRAINING, "--losses-to", str(tmp_path / "one_process.json")]
  )
  assert "devices: 8 in 1 process(es)" in capsys.readouterr().out
  one = json.loads((tmp_path / "one_process.json").read_text())
  assert len(two["train"]) == len(one["train"]) == STEPS
  chex.assert_trees_all_close(two, one, rtol=1e-6)
