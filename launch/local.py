r"""Runs a multi-worker training on this machine, one process per worker.

  python launch/local.py --workers=2 -- --config=configs/dcgan_mnist.py:smoke \
      --workdir=runs/mw

starts `python -m trainer.main --strategy=multi_worker <trainer flags>` once
per worker, each with its own TF_CONFIG (a cluster of `localhost:<port>`
workers; worker 0 is the chief). Every line a worker prints is shown as
`[worker i] <line>`. The launcher exits 0 when all workers do. When a worker
fails, the others are stopped (SIGTERM, then SIGKILL after a grace period)
and the launcher exits 1 with one line naming it. Ctrl-C or SIGTERM to the
launcher stops the workers the same way (exit code 128 + the signal), and a
second Ctrl-C sends SIGKILL at once. On SIGTERM the trainer finishes its
current loop call, saves that step and exits (docs/clusters.md); a
worker that needs longer than the grace period gets SIGKILL.

The launcher sets `--strategy=multi_worker` itself and refuses a `--strategy`
among the trainer flags. It only prepares the environment; the trainer does
the rest. `--module=trainer.bench` runs the benchmark the same way (each
worker prints its JSON line), `--module=trainer.evaluate` an evaluation.
"""

import argparse
import dataclasses
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Sequence, TextIO

# Seconds a worker has to exit after SIGTERM before it gets SIGKILL.
GRACE_SECONDS = 10.0
# The entry points that run on a multi-worker strategy.
MODULES = ("trainer.main", "trainer.bench", "trainer.evaluate")
# Signals to the launcher that stop the workers.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# The longest the main thread waits without running pending signal handlers.
_POLL_SECONDS = 0.5


def free_ports(count: int) -> list[int]:
  """`count` distinct TCP ports that are free on localhost right now.

  The sockets are held until all ports are chosen, so they differ; another
  program could still take one before a worker binds it.
  """
  sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM)
             for _ in range(count)]
  try:
    for s in sockets:
      s.bind(("localhost", 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def tf_config(ports: Sequence[int], index: int) -> str:
  """TF_CONFIG of worker `index` in a cluster of localhost workers."""
  return json.dumps({
      "cluster": {"worker": [f"localhost:{port}" for port in ports]},
      "task": {"type": "worker", "index": index},
  })


def signal_name(number: int) -> str:
  try:
    return signal.Signals(number).name
  except ValueError:
    return f"signal {number}"


@dataclasses.dataclass(frozen=True)
class Outcome:
  """How a group of workers ended.

  Attributes:
    returncodes: each worker's exit code, in worker order; -N means it was
      ended by signal N (as in `subprocess`).
    failed: the worker whose failure stopped the others, or None.
    interrupted_by: the signal that stopped the launcher, or None.
  """
  returncodes: list[int]
  failed: int | None = None
  interrupted_by: int | None = None

  @property
  def exit_code(self) -> int:
    """0 if every worker succeeded; 128 + N after signal N; else 1."""
    if self.interrupted_by is not None:
      return 128 + self.interrupted_by
    return 0 if self.failed is None else 1

  def message(self) -> str:
    """One line that says why the launcher stopped ("" on success)."""
    if self.interrupted_by is not None:
      text = (f"error: the launcher got {signal_name(self.interrupted_by)} "
              "and stopped the workers")
    elif self.failed is not None:
      code = self.returncodes[self.failed]
      how = (f"was killed by {signal_name(-code)}" if code < 0
             else f"failed with exit code {code}")
      text = (f"error: worker {self.failed} {how}; the other workers were "
              "stopped")
    else:
      return ""
    killed = [str(i) for i, code in enumerate(self.returncodes)
              if code == -signal.SIGKILL and i != self.failed]
    if killed:
      text += (f" (worker {', '.join(killed)} did not exit on SIGTERM and "
               "got SIGKILL)")
    return text


def _stream(index: int, pipe, output: TextIO, lock: threading.Lock) -> None:
  """Copies a worker's lines to `output` as `[worker index] line`."""
  prefix = f"[worker {index}] "
  with pipe:
    for raw in pipe:
      line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
      with lock:
        output.write(prefix + line + "\n")
        output.flush()


class _Group:
  """Worker processes, with their exit codes as the waiting threads see them.

  Every event comes through one queue: ("exit", worker, code) from a thread
  per worker that waits for it, and ("signal", number) from the handler of
  the stop signals. SimpleQueue.put is reentrant, so the handler may call it.
  """

  def __init__(self):
    self.events = queue.SimpleQueue()
    self.processes: list[subprocess.Popen] = []
    self.ended: dict[int, int] = {}
    self._threads: list[threading.Thread] = []
    self._lock = threading.Lock()

  def start(self, command: Sequence[str], env: dict[str, str],
            output: TextIO) -> None:
    index = len(self.processes)
    # Its own session: a Ctrl-C in the terminal reaches only the launcher.
    process = subprocess.Popen(
        list(command), env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    self.processes.append(process)
    self._threads += [
        threading.Thread(target=_stream, daemon=True,
                         args=(index, process.stdout, output, self._lock)),
        threading.Thread(target=lambda: self.events.put(
            ("exit", index, process.wait())), daemon=True)]
    # The kernel hands a process's signal to any of its threads that does
    # not block it. Had a helper thread taken a stop signal, the main thread
    # would sleep on in `next_event` and never run the handler (seen as a
    # rare hang after Ctrl-C). The helpers start with the stop signals
    # blocked (a new thread inherits the mask), so only the main thread
    # takes them. The workers, started above, keep the usual mask.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
      for thread in self._threads[-2:]:
        thread.start()
    finally:
      signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

  def next_event(self, timeout: float | None = None) -> tuple:
    """The next event; raises queue.Empty after `timeout` seconds.

    It waits in slices of at most _POLL_SECONDS: Python runs a signal's
    handler only when the main thread is between bytecodes, so a wait that
    a signal did not interrupt would leave the handler's event unqueued.
    A guard against the rare hang after SIGINT that the signal mask in
    `start` did not end; whether it is that hang's cause is not known.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
      left = (_POLL_SECONDS if deadline is None
              else min(_POLL_SECONDS, deadline - time.monotonic()))
      try:
        event = self.events.get(timeout=max(left, 0.0))
        break
      except queue.Empty:
        if deadline is not None and time.monotonic() >= deadline:
          raise
    if event[0] == "exit":
      self.ended[event[1]] = event[2]
    return event

  def running(self) -> list[subprocess.Popen]:
    return [p for i, p in enumerate(self.processes) if i not in self.ended]

  def stop(self, grace_seconds: float) -> None:
    """SIGTERM to the running workers, SIGKILL to those left after the grace.

    Another stop signal during the grace period sends SIGKILL at once.
    """
    for process in self.running():
      process.terminate()
    deadline = time.monotonic() + grace_seconds
    while self.running() and time.monotonic() < deadline:
      try:
        if self.next_event(deadline - time.monotonic())[0] == "signal":
          break
      except queue.Empty:
        break
    for process in self.running():
      process.kill()
    for process in self.processes:
      process.wait()
    for thread in self._threads:
      thread.join()


def run_workers(commands: Sequence[Sequence[str]],
                envs: Sequence[dict[str, str]], *,
                output: TextIO | None = None,
                grace_seconds: float = GRACE_SECONDS) -> Outcome:
  """Runs one process per command until all end or one fails.

  Each process gets its stdout and stderr merged and copied line by line to
  `output` (default sys.stdout) as `[worker i] <line>`, as the lines come.
  The first process to exit non-zero stops the others: SIGTERM, then SIGKILL
  to those still running after `grace_seconds`. SIGINT, SIGTERM and SIGHUP to
  this process stop them the same way, and a second one sends SIGKILL at
  once. This must run in the main thread (it handles signals).

  Args:
    commands: worker i's command line.
    envs: worker i's whole environment.
    output: where the workers' lines go.
    grace_seconds: how long a worker has to exit after SIGTERM.

  Returns:
    The exit codes, and which worker or signal stopped the group.
  """
  if len(commands) != len(envs):
    raise ValueError(f"{len(commands)} commands but {len(envs)} environments")
  group = _Group()

  def on_signal(number: int, frame) -> None:
    del frame
    group.events.put(("signal", number))

  previous = {s: signal.signal(s, on_signal) for s in _STOP_SIGNALS}
  failed = interrupted_by = None
  try:
    for command, env in zip(commands, envs):
      group.start(command, env, sys.stdout if output is None else output)
    while group.running() and failed is None and interrupted_by is None:
      event = group.next_event()
      if event[0] == "signal":
        interrupted_by = event[1]
      elif event[2] != 0:
        failed = event[1]
  finally:
    # Also reached if starting a worker fails: none is left behind.
    group.stop(grace_seconds)
    for s, handler in previous.items():
      signal.signal(s, handler)
  return Outcome([p.returncode for p in group.processes], failed,
                 interrupted_by)


def _is_strategy_flag(arg: str) -> bool:
  name = arg.lstrip("-").split("=", 1)[0]
  return arg.startswith("-") and name == "strategy"


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
  """Splits argv at `--` into the launcher's options and the trainer flags.

  Exits with a usage message (code 2) on bad input.
  """
  parser = argparse.ArgumentParser(
      prog="python launch/local.py",
      usage="%(prog)s [--workers=N] [--port_base=P] [--module=M] -- "
      "<trainer flags>",
      description="Runs N workers of `python -m trainer.main "
      "--strategy=multi_worker <trainer flags>` on this machine.")
  parser.add_argument("--workers", type=int, default=2,
                      help="number of worker processes (>= 1; default 2)")
  parser.add_argument(
      "--module", choices=MODULES, default="trainer.main",
      help="the entry point each worker runs (default trainer.main)")
  parser.add_argument(
      "--port_base", type=int, default=0,
      help="worker i listens on port_base + i; 0 (default) picks free ports")
  own, trainer = list(argv), []
  if "--" in own:
    at = own.index("--")
    own, trainer = own[:at], own[at + 1:]
  args, unknown = parser.parse_known_args(own)
  if unknown:
    parser.error(f"unrecognized arguments: {' '.join(unknown)}; put the "
                 "trainer's flags after --, e.g. python launch/local.py "
                 "--workers=2 -- --config=configs/dcgan_mnist.py:smoke")
  if args.workers < 1:
    parser.error(f"--workers={args.workers} is out of range; it must be >= 1")
  if args.port_base and not 1024 <= args.port_base <= 65536 - args.workers:
    parser.error(
        f"--port_base={args.port_base} is out of range; with "
        f"--workers={args.workers} it must be 0 (free ports) or in "
        f"[1024, {65536 - args.workers}]")
  strategy = [a for a in trainer if _is_strategy_flag(a)]
  if strategy:
    parser.error(f"{strategy[0]} is not allowed among the trainer flags: "
                 "the launcher runs every worker with --strategy=multi_worker")
  return args, trainer


def main(argv: Sequence[str]) -> int:
  args, trainer_flags = parse_args(argv)
  ports = (list(range(args.port_base, args.port_base + args.workers))
           if args.port_base else free_ports(args.workers))
  command = [sys.executable, "-m", args.module, "--strategy=multi_worker",
             *trainer_flags]
  # Unbuffered, so that the workers' stdout lines come as they are printed.
  envs = [dict(os.environ, TF_CONFIG=tf_config(ports, i), PYTHONUNBUFFERED="1")
          for i in range(args.workers)]
  print(f"Starting {args.workers} worker(s) on ports "
        f"{', '.join(map(str, ports))}: {' '.join(command[1:])}",
        file=sys.stderr, flush=True)
  outcome = run_workers([command] * args.workers, envs)
  if outcome.exit_code:
    print(outcome.message(), file=sys.stderr, flush=True)
  return outcome.exit_code


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
