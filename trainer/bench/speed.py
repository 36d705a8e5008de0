"""Speed of the training step: examples/sec, FLOPs and the machine's peak.

`run` measures the project's training step (the real one, from
trainer.step) in steady state: one call first compiles it, then rounds of
`steps` steps are timed. With a baseline (trainer/bench/baseline.py), the
baseline's loop runs in the same process, its rounds alternating with ours
so that the machine's drift (thermal, other jobs) falls on both; the
figures are medians over rounds.
With `scaling`, the same step on one device of the process is timed the
same way, for the speed-up of several replicas over one.
"""

import os
import statistics
import time
from typing import Callable

from absl import logging
import ml_collections
import numpy as np
import tensorflow as tf

import trainer
from trainer.bench import baseline as baseline_lib
from trainer.bench import flops
from trainer.bench import peak
from trainer.bench import tutorial
from trainer import config as config_lib
from trainer.data import pipeline
from trainer import distribute
from trainer.errors import UserError
from trainer import loop as loop_lib
from trainer import losses
from trainer.models import freezing
from trainer.penalties import base as penalties_lib
from trainer import state as state_lib
from trainer import step as step_lib

# Fewer timed steps than this per round measure start-up, not the step.
MIN_STEPS = 10

# The peak that bounds a step computed under each precision policy.
_PEAK_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16",
               "mixed_float16": "float16"}


def _timed(run: Callable[[int], object], steps: int, batch: int) -> float:
  """examples/sec of run(steps), which must block until the steps are done."""
  start = time.perf_counter()
  run(steps)
  return steps * batch / (time.perf_counter() - start)


def _num_workers(strategy: tf.distribute.Strategy) -> int:
  """Worker processes of a multi-worker strategy; 1 otherwise."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return 1
  spec = resolver.cluster_spec()
  return sum(spec.num_tasks(job) for job in ("chief", "worker")
             if job in spec.jobs)


def check_modes(*, pipeline_only: bool, baseline: str, scaling: bool,
                train_steps: int) -> None:
  """What trainer.bench measures: its flags that cannot go together.

  Raises:
    UserError: --pipeline_only with --baseline or --scaling, or --train_steps
      without --baseline or with another mode.
  """
  if pipeline_only and (baseline or scaling):
    raise UserError("--pipeline_only times the input pipeline alone; it "
                    "takes no --baseline or --scaling")
  if train_steps and (not baseline or pipeline_only or scaling):
    raise UserError("--train_steps trains a baseline: it needs --baseline and "
                    "takes no --pipeline_only or --scaling")


def _check(config: ml_collections.ConfigDict, steps: int, rounds: int,
           baseline: str,
           peak_seconds: float = peak.TRIAL_SECONDS) -> None:
  if not peak_seconds > 0:
    raise UserError(f"--peak_seconds={peak_seconds} is out of range; it must "
                    "be > 0")
  if steps < MIN_STEPS:
    raise UserError(f"--steps={steps} is too few to measure a steady state; "
                    f"use at least {MIN_STEPS}")
  if rounds < 1:
    raise UserError(f"--rounds={rounds} is out of range; it must be >= 1")
  if baseline:
    baseline_lib.check(config, baseline)


def _check_scaling(strategy: tf.distribute.Strategy) -> None:
  """A strategy with several replicas in this one process."""
  workers = _num_workers(strategy)
  if workers > 1 or strategy.num_replicas_in_sync < 2:
    raise UserError(
        "--scaling compares the step on several devices of this process with "
        "one of them; it needs --strategy=mirrored with several GPUs or "
        f"--num_cpu_devices>=2 (here: {strategy.num_replicas_in_sync} "
        f"replica(s) over {workers} worker process(es))")


def _our_steps(config: ml_collections.ConfigDict,
               strategy: tf.distribute.Strategy, source
               ) -> tuple[state_lib.GanState, Callable[[int], object]]:
  """The project's state and run(n), compiled, on `strategy`."""
  state = state_lib.build_state(config, strategy)
  train_steps = step_lib.make_train_steps(config, strategy, state, source, 0)
  ours = lambda n: train_steps(n)[1]  # the int() of first_bad syncs
  ours(MIN_STEPS)  # compiles
  return state, ours


def step_shape(config: ml_collections.ConfigDict) -> flops.StepShape:
  """What the cost of a resolved config's step depends on (flops.StepShape)."""
  groups = penalties_lib.penalty_groups(config.penalties, "d")
  g_groups = penalties_lib.penalty_groups(config.penalties, "g")
  batch = config.train.batch_size

  def share(group: penalties_lib.PenaltyGroup) -> float:
    """The share of the batch that G's penalties of a group evaluate."""
    return sum(penalty.examples(config.penalties[name], batch)
               for name, penalty, _ in group.penalties) / batch

  return flops.StepShape(
      n_disc=config.train.n_disc, simultaneous=config.train.simultaneous,
      eager_penalties=sum(len(g.penalties) for g in groups if g.interval == 1),
      lazy=tuple((g.interval, len(g.penalties),
                  any(p.needs_fake for _, p, _ in g.penalties))
                 for g in groups if g.interval > 1),
      generator_needs_real=losses.LOSSES.get(
          config.model.loss).generator_needs_real,
      g_eager_penalties=sum(share(g) for g in g_groups if g.interval == 1),
      g_lazy=tuple((g.interval, share(g)) for g in g_groups if g.interval > 1))


def run(config: ml_collections.ConfigDict, strategy: tf.distribute.Strategy,
        *, steps: int, rounds: int, baseline: str = "",
        scaling: bool = False,
        peak_seconds: float = peak.TRIAL_SECONDS) -> dict:
  """Measures the training step (and a baseline); returns the JSON record.

  With `scaling`, the same step also runs on one device of this process
  (OneDeviceStrategy, the first of the strategy's devices), in rounds that
  alternate with the others: `scaling` is ours / one device.
  `peak_seconds`: the length of each timed trial of the matmul peak.

  Raises:
    UserError: too few steps, an unknown baseline, or a config the
      baseline cannot stand beside; scaling without several local replicas;
      a bad config or data source.
  """
  config = config_lib.resolve(config)
  _check(config, steps, rounds, baseline, peak_seconds)
  if scaling:
    _check_scaling(strategy)
  source = loop_lib.load_source(config)
  state, ours = _our_steps(config, strategy, source)
  batch = config.train.batch_size
  # name -> (run(n), global batch), timed in this order every round.
  timed = {"ours": (ours, batch)}
  loop = None
  if baseline:
    loop = baseline_lib.make_loop(config, baseline, source)
    loop.run(2)  # compiles
    timed[baseline] = (loop.run, tutorial.BATCH_SIZE)
  if scaling:
    one = distribute.create_strategy("one_device")
    timed["one_device"] = (_our_steps(config, one, source)[1], batch)
  policy = config.runtime.mixed_precision
  peak_dtypes = ("float32", "bfloat16") + (
      ("float16",) if policy == "mixed_float16" else ())
  meters = [peak.MatmulPeak(dtype, peak_seconds) for dtype in peak_dtypes]

  def peak_trials(count: int) -> None:
    for _ in range(count):
      for meter in meters:
        meter.trial()

  # The peak's trials bracket every round (one before the first, one after
  # each, the rest at the end), so that the best of them sees the machine
  # as the rounds did, even when something else shared it for a while.
  # Workers end their trials at different times: one untimed step (its
  # collectives wait for every worker) lines them up again before a round,
  # so that no worker's round includes waiting for the others to start.
  workers = _num_workers(strategy)
  rates = {name: [] for name in timed}
  peak_trials(1)
  for r in range(rounds):
    if workers > 1:
      ours(1)
    for name, (run_steps, examples) in timed.items():
      rates[name].append(_timed(run_steps, steps, examples))
    logging.info("round %d/%d: %s examples/sec", r + 1, rounds,
                 ", ".join(f"{name} {values[-1]:.1f}"
                           for name, values in rates.items()))
    peak_trials(1)
  peak_trials(max(0, peak.TRIALS - rounds - 1))
  peaks = {dtype: meter.flops_per_sec
           for dtype, meter in zip(peak_dtypes, meters)}
  ours_rates = rates["ours"]
  g_forward = flops.forward_flops(state.generator)
  d_forward = flops.forward_flops(state.discriminator)
  simultaneous = config.train.simultaneous
  d_frozen = flops.freeze_saving(state.discriminator, freezing.frozen_layers(
      config.model, state.discriminator, config.train.freeze_d))
  step_flops = flops.gan_step_flops(g_forward, d_forward, step_shape(config),
                                    d_frozen)
  policy_peak = peaks[_PEAK_DTYPE[policy]]
  median = statistics.median(ours_rates)
  # Every worker measures its own peak, at about the same time (the timed
  # rounds end together): the cluster's peak is their sum.
  record = {
      "replicas": strategy.num_replicas_in_sync, "batch_size": batch,
      "mixed_precision": policy, "jit_compile": config.runtime.jit_compile,
      "simultaneous": simultaneous,
      "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
      "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
      # None: unset, TensorFlow's own choice (see trainer/__init__.py).
      "onednn_opts": os.environ.get(trainer.ONEDNN_ENV),
      "steps": steps, "rounds": rounds,
      "examples_per_sec": median, "examples_per_sec_rounds": ours_rates,
      "flops_per_example": step_flops,
      "workers": workers, "peak_flops_per_sec": peaks,
      "peak_fraction": median * step_flops / (workers * policy_peak),
  }
  if scaling:
    one_median = statistics.median(rates["one_device"])
    record["one_device"] = {
        "examples_per_sec": one_median,
        "examples_per_sec_rounds": rates["one_device"],
        "peak_fraction": one_median * step_flops / policy_peak}
    record["scaling"] = median / one_median
  if loop is not None:
    base_rates = rates[baseline]
    base_median = statistics.median(base_rates)
    base_flops = flops.tutorial_step_flops(
        flops.forward_flops(loop.generator),
        flops.forward_flops(loop.discriminator))
    record["baseline"] = {
        "name": baseline, "batch_size": tutorial.BATCH_SIZE,
        "examples_per_sec": base_median,
        "examples_per_sec_rounds": base_rates,
        "flops_per_example": base_flops,
        "peak_fraction": base_median * base_flops / peaks["float32"]}
    record["ratio"] = median / base_median
  _warn_above_peak(record)
  return record


def _warn_above_peak(record: dict) -> None:
  """Logs a warning for each figure above its peak: the machine was shared."""
  fractions = {"ours": record["peak_fraction"]}
  if "one_device" in record:
    fractions["one_device"] = record["one_device"]["peak_fraction"]
  if "baseline" in record:
    fractions[record["baseline"]["name"]] = record["baseline"]["peak_fraction"]
  for name, fraction in fractions.items():
    if fraction > 1:
      logging.warning(
          "%s ran at %.2f of the measured matmul peak, which no step can "
          "beat: something else used the machine during the peak's trials. "
          "Measure on an idle machine for figures to keep.", name, fraction)


def pipeline_rate(config: ml_collections.ConfigDict,
                  strategy: tf.distribute.Strategy, *, steps: int,
                  rounds: int) -> dict:
  """examples/sec of the input pipeline alone, as the step would read it."""
  config = config_lib.resolve(config)
  _check(config, steps, rounds, "")
  source = loop_lib.load_source(config)
  train_config = config.train
  dataset = strategy.distribute_datasets_from_function(
      pipeline.make_input_fn(source, global_batch=train_config.batch_size,
                             n_disc=train_config.n_disc, seed=config.seed,
                             shuffle=config.data.shuffle, start_step=0))
  iterator = iter(dataset)
  examples = train_config.batch_size * train_config.n_disc

  def read(n: int) -> None:
    for _ in range(n):
      element = next(iterator)
    # Waits for the last element's tensors, on every replica.
    for value in strategy.experimental_local_results(element["image"]):
      np.asarray(value[0, 0, 0, 0])

  read(MIN_STEPS)  # starts the prefetching threads
  rates = [_timed(read, steps, examples) for _ in range(rounds)]
  return {"pipeline_only": True, "steps": steps, "rounds": rounds,
          "batch_size": train_config.batch_size,
          "n_disc": train_config.n_disc,
          "examples_per_sec": statistics.median(rates),
          "examples_per_sec_rounds": rates}
