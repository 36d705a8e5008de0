"""The loops trainer.bench compares ours with, by name (--baseline).

A baseline is timed beside our step (trainer/bench/speed.py), or trained on
its own and its generator evaluated as ours is (`train`).
"""

import os
import time

from absl import logging
import ml_collections
import tensorflow as tf

from trainer.bench import tutorial
from trainer import config as config_lib
from trainer.data import pipeline
from trainer.data import sources
from trainer.errors import UserError
from trainer import loop as loop_lib
from trainer.metrics import evaluator as evaluator_lib
from trainer.registry import Registry
from trainer import schedules as schedules_lib
from trainer import state as state_lib
from trainer import summaries

BASELINES: Registry = Registry("baseline", "--baseline")
BASELINES.register("tutorial")(tutorial)


def check(config: ml_collections.ConfigDict, baseline: str) -> None:
  """A known baseline, and a config whose model it can stand beside."""
  BASELINES.get(baseline)
  model = config.model
  if (model.image_size, model.channels, model.num_classes) != (28, 1, 0):
    raise UserError(
        f"--baseline={baseline} trains the tutorial's 28x28 grey "
        "unconditional MNIST DCGAN; this config's model is "
        f"{model.image_size}x{model.image_size}x{model.channels} with "
        f"{model.num_classes} classes. Use configs/dcgan_mnist.py")


def make_loop(config: ml_collections.ConfigDict, baseline: str,
              source: sources.Source) -> tutorial.TutorialLoop:
  """The baseline's loop over every image of the config's data."""
  everything = source.read(tf.range(source.num_examples, dtype=tf.int64))
  return BASELINES.get(baseline).TutorialLoop(
      pipeline.to_unit_range(everything["image"]).numpy(), seed=config.seed)


def train(config: ml_collections.ConfigDict, *, baseline: str, steps: int,
          workdir: str) -> dict:
  """Trains the baseline's loop for `steps` steps and evaluates its G.

  The loop runs as its authors wrote it (no distribution strategy) on every
  image of the config's data. Its generator is then measured by the
  project's evaluator with config.eval, exactly as a checkpoint of ours is:
  the record goes to <workdir>/eval/metrics.jsonl, D's histograms and
  samples to TensorBoard. The baseline keeps no moving average, so its G
  stands where our evaluator takes G_ema.

  Raises:
    UserError: an unknown baseline, a config it cannot stand beside, too few
      steps, or a bad eval setting (before the training).
  """
  config = config_lib.resolve(config)
  check(config, baseline)
  if steps < 1:
    raise UserError(f"--train_steps={steps} is out of range; it must be >= 1")
  source = loop_lib.load_source(config)
  loop = make_loop(config, baseline, source)
  strategy = tf.distribute.get_strategy()  # the default: no strategy
  state = state_lib.GanState(
      loop.generator, loop.discriminator, loop.generator,
      loop.g_optimizer, loop.d_optimizer, tf.Variable(0, dtype=tf.int64),
      state_lib.AugmentState(0.0), state_lib.PenaltyState(config.penalties),
      schedules_lib.ScheduledValues({}, batch_size=1))
  # Built before training, so that a bad eval setting fails at once.
  evaluator = evaluator_lib.Evaluator(config, strategy, state, workdir,
                                      is_chief=True)
  evaluator.protocol["generator"] = f"{baseline} generator (no moving average)"
  batch = tutorial.BATCH_SIZE
  progress = summaries.Progress(total_steps=steps, examples_per_step=batch,
                                start_step=0)
  start, done = time.monotonic(), 0
  while done < steps:
    chunk = min(config.train.log_every, steps - done)
    g_loss, d_loss = loop.run(chunk)
    done += chunk
    rates = progress.update(done)
    logging.info("%s step %d/%d | %.1f examples/sec | d_loss %.4f g_loss "
                 "%.4f | time left %s", baseline, done, steps,
                 rates["perf/examples_per_sec"], d_loss, g_loss,
                 summaries.format_duration(rates["progress/seconds_left"]))
  seconds = time.monotonic() - start
  record = evaluator.evaluate(steps)
  return {"baseline": baseline, "train_steps": steps, "batch_size": batch,
          "images": steps * batch, "train_seconds": round(seconds, 1),
          "workdir": os.fspath(workdir),
          "metrics": {k: v for k, v in record.items()
                      if k not in ("protocol", "time", "checkpoint")}}
