r"""Trains a GAN: `python -m trainer.main --strategy=mirrored`.

Flags say where and how to run (trainer/cli.py); the config says what to
train. See README.md.

SIGTERM (a scheduler's preemption) and Ctrl-C save the current step and
stop; the same command resumes there (trainer/signals.py).
"""

from trainer import cli  # pylint: disable=g-bad-import-order  (sets TF's log level first)
from absl import app

from trainer import loop
from trainer import signals


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  with signals.interrupt_as_line(
      "stopped by Ctrl-C; the same command goes on from the last "
      f"checkpoint (if any): {signals.command()}"), cli.errors_as_messages(
          loop.NonFiniteLoss, loop.ClusterFailure):
    config, workdir = cli.config(), cli.workdir()
    strategy = cli.create_strategy()
    # After the strategy: a cluster's coordination service installs a
    # SIGTERM handler of its own, which this one replaces.
    stop_requested = signals.stop_requests()
    try:
      loop.run(config, workdir, strategy, stop_requested=stop_requested)
    except loop.Preempted as e:
      signals.exit_with(f"{e}: {signals.command()}")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
