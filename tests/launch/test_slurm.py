"""`sbatch launch/slurm/train.sbatch`: a training on a real Slurm.

The jobs go to the Slurm on this machine. If `sinfo` shows no node that takes
jobs, the session starts a single-node Slurm with
tests/launch/start_local_slurm.sh when it runs as root, and stops the daemons
it started when it ends; otherwise the tests fail with a message saying how
to start one. Two workers share the one node (`--ntasks-per-node=2`).
"""

import os
import pathlib
import re
import signal
import subprocess
import sys
import time
from typing import Iterator

import pytest

from tests.conftest import REPO, saved_step

# Jobs on a real Slurm.
pytestmark = pytest.mark.slow

SBATCH_SCRIPT = "launch/slurm/train.sbatch"
START_SCRIPT = REPO / "tests" / "launch" / "start_local_slurm.sh"
MUNGE_PID_FILE = pathlib.Path("/run/munge/munged.pid")
# Slurm ends a hung job after this many minutes; the subprocess timeout,
# longer, only guards against a hung sbatch.
_JOB_MINUTES = 10
_TIMEOUT_SECONDS = _JOB_MINUTES * 60 + 300
_STEPS = 4


def _sinfo_states() -> list[str]:
  """The states of the nodes Slurm knows ([] if sinfo fails or is missing)."""
  try:
    process = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True,
                             text=True, timeout=60, check=False)
  except FileNotFoundError:
    return []
  return process.stdout.split() if process.returncode == 0 else []


def _node_up() -> bool:
  return any(state in ("idle", "mix", "alloc") for state in _sinfo_states())


def _live_pid(pid_file: pathlib.Path) -> int | None:
  """The pid in `pid_file` if it is a live process of that daemon, else None.

  The daemon is named by the file (munged.pid: munged): a stale pid file may
  hold the pid of an unrelated process.
  """
  try:
    pid = int(pid_file.read_text().strip())
    name = pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
  except (OSError, ValueError):
    return None
  return pid if name == pid_file.stem else None


def _stop(pid: int) -> None:
  """SIGTERM to a daemon (not our child), then waits until it has gone."""
  os.kill(pid, signal.SIGTERM)
  for _ in range(300):
    try:
      # "<pid> (<name>) <state> ...": a zombie ("Z") has exited.
      stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
      return
    if stat.rpartition(")")[2].split()[0] == "Z":
      return
    time.sleep(0.1)
  os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory) -> Iterator[None]:
  """A Slurm that takes jobs on this machine, started here if need be."""
  if _node_up():
    yield
    return
  if os.geteuid() != 0:
    pytest.fail(
        "no Slurm node takes jobs here (`sinfo -h -o %t` shows "
        f"{_sinfo_states() or 'nothing'}). Start a single-node Slurm as root "
        f"with `sudo {START_SCRIPT.relative_to(REPO)}`, or run the tests as "
        "root so that they start it.", pytrace=False)
  scratch = tmp_path_factory.mktemp("slurm")
  pid_files = [MUNGE_PID_FILE, scratch / "slurmctld.pid",
               scratch / "slurmd.pid"]
  # Daemons that run now are not this session's to stop.
  started = [f for f in pid_files if not _live_pid(f)]
  process = subprocess.run(["bash", str(START_SCRIPT), str(scratch)],
                           capture_output=True, text=True,
                           timeout=_TIMEOUT_SECONDS, check=False)
  try:
    if process.returncode != 0:
      pytest.fail(f"{START_SCRIPT.name} failed:\n{process.stdout}"
                  f"{process.stderr}", pytrace=False)
    yield
  finally:
    for pid_file in reversed(started):  # slurmd, slurmctld, then munged.
      pid = _live_pid(pid_file)
      if pid:
        _stop(pid)


def sbatch(*args: str, output: pathlib.Path) -> tuple[int, str]:
  """Runs `sbatch --wait` in the repository; returns (exit code, job output).

  The job runs on one node with two tasks, with this Python.
  """
  env = dict(os.environ, GAN_PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="")
  process = subprocess.run(
      ["sbatch", "--wait", "--nodes=1", "--ntasks-per-node=2",
       f"--time={_JOB_MINUTES}", f"--output={output}", *args],
      cwd=REPO, env=env, capture_output=True, text=True,
      timeout=_TIMEOUT_SECONDS, check=False)
  job_output = output.read_text() if output.exists() else ""
  return process.returncode, process.stdout + process.stderr + job_output


def test_two_workers_train_and_only_the_chief_writes(slurm, mnist_dir,
                                                     tmp_path):
  del slurm
  workdir = tmp_path / "workdir"
  code, output = sbatch(
      SBATCH_SCRIPT,
      # Relative: the script runs the trainer in the submit directory.
      "--config=configs/dcgan_mnist.py:smoke",
      "--config.model.g_width=8", "--config.model.d_width=8",
      "--config.train.batch_size=8", f"--config.train.steps={_STEPS}",
      f"--config.train.checkpoint_every={_STEPS}",
      f"--config.data.source=idx:{mnist_dir}", "--config.data.split=test",
      f"--workdir={workdir}", output=tmp_path / "job.out")

  assert code == 0, output
  # srun --label: every line starts with the task number.
  tasks = re.findall(r"^(\d+): .*Strategy multi_worker with 2 replica\(s\)$",
                     output, re.MULTILINE)
  assert sorted(tasks) == ["0", "1"], output
  assert saved_step(workdir / "checkpoints") == _STEPS
  # The chief alone wrote the config, the checkpoints and the summaries.
  assert list(tmp_path.rglob("config.json")) == [workdir / "config.json"]
  assert list(tmp_path.rglob("*.index")) == [
      workdir / "checkpoints" / f"ckpt-{_STEPS}.index"]
  writers = {path.name.split(".")[-3]  # events.out.tfevents.<t>.<host>.<pid>.
             for path in workdir.rglob("events.out.tfevents.*")}
  assert len(writers) == 1, writers


def test_a_strategy_flag_is_refused(slurm, tmp_path):
  del slurm
  code, output = sbatch(SBATCH_SCRIPT, "--strategy=mirrored",
                        f"--workdir={tmp_path / 'workdir'}",
                        output=tmp_path / "job.out")

  assert code != 0, output
  assert "sets --strategy=multi_worker itself" in output, output
  assert "--strategy=mirrored" in output, output
  assert not (tmp_path / "workdir").exists()
