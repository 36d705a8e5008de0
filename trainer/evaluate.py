r"""Evaluates a run's checkpoints: `python -m trainer.evaluate --workdir=<run>`.

Give the config the run was trained with. By default the latest checkpoint is
evaluated; `--checkpoint` picks one, `--continuous` evaluates each new one as
training writes it, until the final step. Results: <workdir>/eval/metrics.jsonl
and TensorBoard under <workdir>/eval. See docs/evaluation.md. Ctrl-C stops
at once: each result is written whole or not at all.
"""

import os

from trainer import cli  # pylint: disable=g-bad-import-order  (sets TF's log level first)
from absl import app
from absl import flags

from trainer.metrics import evaluator as evaluator_lib
from trainer import signals

_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", "", "Evaluate this checkpoint (a path such as "
    "<workdir>/checkpoints/ckpt-1000) instead of the latest.")
_CONTINUOUS = flags.DEFINE_bool(
    "continuous", False, "Watch the workdir and evaluate every new checkpoint "
    "until the one of the config's train.steps.")
_POLL_SECONDS = flags.DEFINE_float(
    "poll_seconds", 30.0, "With --continuous: how often to look for new "
    "checkpoints.", lower_bound=0.0)
_TIMEOUT = flags.DEFINE_float(
    "timeout", 0.0, "With --continuous: give up (exit 1) after this many "
    "seconds without a new checkpoint; 0 waits for ever.", lower_bound=0.0)


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  metrics = os.path.join(cli.workdir(), "eval", "metrics.jsonl")
  with signals.interrupt_as_line(
      "stopped by Ctrl-C; the evaluations finished before it are in "
      f"{metrics}"), cli.errors_as_messages(evaluator_lib.WatchTimeout):
    evaluator_lib.evaluate_checkpoints(
        cli.config(), cli.workdir(), cli.create_strategy(),
        checkpoint=_CHECKPOINT.value, continuous=_CONTINUOUS.value,
        poll_seconds=_POLL_SECONDS.value, timeout_seconds=_TIMEOUT.value)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
