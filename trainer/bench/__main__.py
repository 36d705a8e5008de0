r"""Measures the training step: `python -m trainer.bench --config=<config>`.

Prints one JSON line: steady-state examples/sec of the step (compilation
excluded), FLOPs per example, and the fraction of the machine's matrix-multiply
peak (measured in the same run) that the step achieves. `--baseline=tutorial`
times the TensorFlow DCGAN tutorial's loop in alternating rounds and adds the
ratio ours/baseline; `--scaling` times the same step on one device of the
process in alternating rounds and adds ours/one device; `--pipeline_only`
times the input pipeline alone.
`--baseline=tutorial --train_steps=N` instead trains the tutorial's loop N
steps and evaluates its generator like one of ours. See
docs/performance.md.
"""

import json
import os

from trainer import cli  # pylint: disable=g-bad-import-order  (sets TF's log level first)
from absl import app
from absl import flags

from trainer.bench import baseline as baseline_lib
from trainer.bench import peak
from trainer.bench import speed

_STEPS = flags.DEFINE_integer(
    "steps", 50, f"Timed training steps per round (at least "
    f"{speed.MIN_STEPS}).")
_ROUNDS = flags.DEFINE_integer(
    "rounds", 3, "Timed rounds; the figures are medians over rounds, and "
    "baseline rounds alternate with ours.")
_BASELINE = flags.DEFINE_string(
    "baseline", "", "Also time this loop in the same run: "
    f"{', '.join(baseline_lib.BASELINES.names())}.")
_SCALING = flags.DEFINE_bool(
    "scaling", False, "Also time the same step on one device of this process "
    "(rounds alternating with ours) and give ours / one device; needs "
    "several local replicas (--strategy=mirrored).")
_PEAK_SECONDS = flags.DEFINE_float(
    "peak_seconds", peak.TRIAL_SECONDS, "Length of each timed trial of the "
    "matmul peak, per dtype (shorter: a quicker, noisier peak). At least "
    f"{peak.TRIALS} trials, one before the first round and one after each.")
_PIPELINE_ONLY = flags.DEFINE_bool(
    "pipeline_only", False, "Time the input pipeline alone.")
_TRAIN_STEPS = flags.DEFINE_integer(
    "train_steps", 0, "Instead of timing: train the --baseline loop this many "
    "steps and evaluate its generator with --config's eval settings, in "
    "--workdir (default runs/<baseline>_<steps>_steps).")


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  with cli.errors_as_messages():
    config = cli.config()
    speed.check_modes(
        pipeline_only=_PIPELINE_ONLY.value, baseline=_BASELINE.value,
        scaling=_SCALING.value, train_steps=_TRAIN_STEPS.value)
    if _TRAIN_STEPS.value:
      baseline, steps = _BASELINE.value, _TRAIN_STEPS.value
      cli.configure_threads()
      record = baseline_lib.train(
          config, baseline=baseline, steps=steps,
          workdir=flags.FLAGS.workdir or os.path.join(
              "runs", f"{baseline}_{steps}_steps"))
      print(json.dumps(record))
      return
    strategy = cli.create_strategy()
    if _PIPELINE_ONLY.value:
      record = speed.pipeline_rate(config, strategy, steps=_STEPS.value,
                                   rounds=_ROUNDS.value)
    else:
      record = speed.run(config, strategy, steps=_STEPS.value,
                         rounds=_ROUNDS.value, baseline=_BASELINE.value,
                         scaling=_SCALING.value,
                         peak_seconds=_PEAK_SECONDS.value)
    flag_values = flags.FLAGS
    print(json.dumps({
        "config": flag_values["config"].serialize().partition("=")[2],
        "strategy": flag_values.strategy,
        "num_cpu_devices": flag_values.num_cpu_devices, **record}))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
