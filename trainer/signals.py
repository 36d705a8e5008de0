"""Stopping on a signal: SIGTERM and Ctrl-C save training's current step.

Schedulers (Slurm, Kubernetes, Cloud TPU) send SIGTERM before they preempt a
job; a user in a terminal presses Ctrl-C (SIGINT). SIGTERM is noted whenever
it comes: training saves its current step at the end of its loop call and
stops (trainer.loop.run's `stop_requested`). Ctrl-C does the same once
training's loop runs. Anywhere else it stops at once (KeyboardInterrupt):
before the loop there is nothing new to save, and evaluating or applying a
model writes each result file whole or not at all (trainer/files.py). A
second Ctrl-C in the loop also stops at once, without waiting for the
current steps; a checkpoint being written (`uninterrupted`) is completed
first, so that Ctrl-C never damages one.

The entry points end either way with one line and the exit code 128 + the
signal, as a shell reports a process ended by it (`interrupt_as_line`,
`exit_with`).
"""

import contextlib
import shlex
import signal
import sys
from typing import Callable, Iterator, NoReturn

from absl import logging


class _Stop:
  """What the handlers have seen: one per process, as the handlers are."""

  def __init__(self):
    self.signal = 0  # the signal that asked for a save and stop; 0: none
    self.in_loop = False  # training's loop has polled stop_requested
    self.writing = 0  # how many uninterrupted() are open
    self.deferred = False  # a Ctrl-C met while writing, raised after it


_stop = _Stop()


def _on_sigterm(signum: int, frame) -> None:
  del frame
  _stop.signal = _stop.signal or signum
  logging.warning("Received SIGTERM: saving at the end of this loop and "
                  "stopping")


def _on_sigint(signum: int, frame) -> None:
  del frame
  if _stop.in_loop and not _stop.signal:
    _stop.signal = signum
    logging.warning("Ctrl-C: saving after the current steps, then stopping "
                    "(Ctrl-C again stops at once, without saving them)")
  elif _stop.writing:
    _stop.deferred = True
    logging.warning("Ctrl-C: stopping once the checkpoint being written is "
                    "complete")
  else:
    raise KeyboardInterrupt


def stop_requests() -> Callable[[], bool]:
  """Installs the SIGTERM handler (from the main thread).

  Call it once the strategy exists: TensorFlow's coordination service of a
  cluster installs a SIGTERM handler of its own when it starts.

  Returns:
    stop_requested for trainer.loop.run, which polls it after every call of
    its compiled loop: whether SIGTERM, or Ctrl-C within interrupt_as_line,
    asked training to save and stop. From its first poll on, the loop has
    trained steps that a save keeps, and Ctrl-C asks for one; before it
    (building the state, tracing the step) Ctrl-C stops at once.
  """
  signal.signal(signal.SIGTERM, _on_sigterm)

  def stop_requested() -> bool:
    _stop.in_loop = True
    return bool(_stop.signal)

  return stop_requested


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
  """Ctrl-C within it stops the process at its end, not half-way through.

  For writes that must not be cut short (a checkpoint), in the main thread,
  where signal handlers run.
  """
  _stop.writing += 1
  try:
    yield
  finally:
    _stop.writing -= 1
  if _stop.deferred and not _stop.writing:
    _stop.deferred = False
    raise KeyboardInterrupt


def command() -> str:
  """The command line that started this process, to be run again."""
  return shlex.join(sys.orig_argv)


def exit_with(line: str) -> NoReturn:
  """Prints `line` and exits with 128 + the signal that asked for the stop.

  A task that stopped because another task of its cluster was signalled
  exits as if it got SIGTERM, so that a scheduler restarts the job rather
  than count it as done.
  """
  print(line, file=sys.stderr)
  sys.exit(128 + (_stop.signal or signal.SIGTERM))


@contextlib.contextmanager
def interrupt_as_line(line: str) -> Iterator[None]:
  """Ctrl-C within it ends the process with `line` and the exit code 130.

  Within training's loop, Ctrl-C asks for a save and stop instead.
  """
  previous = signal.signal(signal.SIGINT, _on_sigint)
  try:
    yield
  except KeyboardInterrupt:
    print(line, file=sys.stderr)
    sys.exit(128 + signal.SIGINT)
  finally:
    signal.signal(signal.SIGINT, previous)
