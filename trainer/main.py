r"""Trains a GAN: `python -m trainer.main --strategy=mirrored`.

Flags say where and how to run (trainer/cli.py); the config says what to
train. See README.md.
"""

import signal
import sys
import threading

from trainer import cli  # pylint: disable=g-bad-import-order  (sets TF's log level first)
from absl import app
from absl import logging

from trainer import train

# 128 + SIGTERM, as a shell reports a process ended by SIGTERM.
_PREEMPTED_EXIT_CODE = 143


def _sigterm_received():
  """Installs a SIGTERM handler; returns a callable: was SIGTERM received?

  Schedulers (Slurm, Kubernetes, Cloud TPU) send SIGTERM before they preempt
  a job; training then saves the current step and stops.
  """
  received = threading.Event()

  def handler(signum, frame):
    del frame
    logging.warning("Received signal %d: saving at the end of this loop and "
                    "stopping", signum)
    received.set()

  signal.signal(signal.SIGTERM, handler)
  return received.is_set


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  with cli.errors_as_messages(train.NonFiniteLoss, train.ClusterFailure,
                               train.BadImage):
    try:
      train.run(cli.config(), cli.workdir(), cli.create_strategy(),
                stop_requested=_sigterm_received())
    except train.Preempted as e:
      logging.info("%s", e)
      # Non-zero, so that a scheduler restarts the job rather than count it
      # done.
      sys.exit(_PREEMPTED_EXIT_CODE)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
