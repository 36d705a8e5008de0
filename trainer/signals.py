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
`exit_with`), and so do they while they start (`stop_in_one_line`).

A KeyboardInterrupt is raised wherever the program is, often deep in
TensorFlow or Keras while the step is traced, and the code it unwinds is not
always ready for it: an exit that fails half-way raises another error in its
place, and a bare `except:` or a `__del__` swallows it. Whichever way it goes,
a Ctrl-C still ends the program with its line and 130 (`_stop.interrupted`).
"""

import contextlib
import os
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
    # A Ctrl-C was raised as KeyboardInterrupt and no line has said so yet.
    self.interrupted = False
    self.stderr = 2  # where stop_in_one_line's line goes (a copy of fd 2)


_stop = _Stop()


def _interrupt() -> NoReturn:
  """Stops at once: raises KeyboardInterrupt, noting that Ctrl-C did."""
  _stop.interrupted = True
  raise KeyboardInterrupt


def _raise_if_interrupted() -> None:
  """Raises KeyboardInterrupt again for a Ctrl-C that library code swallowed,
  so that it still stops the program."""
  if _stop.interrupted:
    raise KeyboardInterrupt


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
    _interrupt()


def stop_requests() -> Callable[[], bool]:
  """Installs the SIGTERM handler (from the main thread).

  Call it once the strategy exists: TensorFlow's coordination service of a
  cluster installs a SIGTERM handler of its own when it starts.

  Returns:
    stop_requested for trainer.loop.run, which polls it after every call of
    its compiled loop: whether SIGTERM, or Ctrl-C within interrupt_as_line,
    asked training to save and stop. From its first poll on, the loop has
    trained steps that a save keeps, and Ctrl-C asks for one; before it
    (building the state, tracing the step) Ctrl-C stops at once, and a poll
    raises the KeyboardInterrupt of one that library code swallowed.
  """
  signal.signal(signal.SIGTERM, _on_sigterm)

  def stop_requested() -> bool:
    _raise_if_interrupted()
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
    _interrupt()


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

  Within training's loop, Ctrl-C asks for a save and stop instead. After a
  Ctrl-C, whatever error ends the block is the Ctrl-C's (see the module's
  docstring), and one that was swallowed stops the program when the block
  ends, if nothing raised it again before.
  """
  previous = signal.signal(signal.SIGINT, _on_sigint)
  try:
    _raise_if_interrupted()  # swallowed while the program started
    yield
    _raise_if_interrupted()
  except BaseException as e:  # pylint: disable=broad-except
    if not (_stop.interrupted or isinstance(e, KeyboardInterrupt)):
      raise
    _stop.interrupted = False
    print(line, file=sys.stderr)
    sys.exit(128 + signal.SIGINT)
  finally:
    signal.signal(signal.SIGINT, previous)


def _end_in_one_line() -> NoReturn:
  """Prints stop_in_one_line's line and ends the process with 130 at once."""
  for stream in (sys.stdout, sys.stderr):
    with contextlib.suppress(Exception):  # a stream the program closed
      stream.flush()
  os.write(_stop.stderr, "stopped by Ctrl-C; run the same command to start "
           f"again: {command()}\n".encode())
  # At once: nothing is written before the entry points' interrupt_as_line,
  # and the interpreter's shutdown could meet a half-imported TensorFlow.
  os._exit(128 + signal.SIGINT)  # pylint: disable=protected-access


def stop_in_one_line() -> None:
  """Ctrl-C outside the entry points' interrupt_as_line ends the program with
  one line and the exit code 130, rather than a traceback.

  For a program's start (TensorFlow takes seconds to load, then the flags
  are parsed): call it from the main thread first thing, before TensorFlow
  is imported. What reaches the top of the program after a Ctrl-C (its
  KeyboardInterrupt, or the error that replaced it) is the line; code that
  catches KeyboardInterrupt itself (pytest) is not affected. A Ctrl-C that
  a `__del__` swallowed is not reported as an ignored exception (with a
  traceback): interrupt_as_line and the loop's polls raise it again. The
  line goes to the standard error of this moment, also if file descriptor 2
  is redirected later (trainer/cli.py, while TensorFlow loads).
  """
  previous_uncaught, previous_unraisable = sys.excepthook, sys.unraisablehook

  def on_uncaught(kind, value, traceback) -> None:
    if _stop.interrupted or issubclass(kind, KeyboardInterrupt):
      _end_in_one_line()
    previous_uncaught(kind, value, traceback)

  def on_unraisable(unraisable) -> None:
    if not issubclass(unraisable.exc_type, KeyboardInterrupt):
      previous_unraisable(unraisable)

  _stop.stderr = os.dup(2)
  sys.excepthook, sys.unraisablehook = on_uncaught, on_unraisable
  signal.signal(signal.SIGINT, _on_sigint)
