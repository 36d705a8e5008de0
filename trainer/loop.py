"""The training loop: a controller that runs the compiled steps and actions.

`run()` sets up (config, data, state, checkpoints), then alternates: the
compiled loop trains to the next stop, and every action due at that stop
runs. An action is one periodic piece of work, kept apart from when it
runs: the NaN stop, the log line and scalars, the image grid with D's
histograms, the checkpoint, the evaluation, the preemption agreement. The
next stop is the nearest step at which some action is due. A new periodic
job (a second evaluation, a sample video) is one more registered action
(`action`), not an edit of the loop.
"""

import contextlib
import dataclasses
import os
from typing import Callable

from absl import logging
import ml_collections
import tensorflow as tf

from trainer import checkpoint as checkpoint_lib
from trainer import config as config_lib
from trainer.convert import conversion
from trainer.data import pipeline
from trainer.data import sources
from trainer import distribute
from trainer import errors
from trainer.errors import UserError
from trainer.metrics import evaluator as evaluator_lib
from trainer.models import freezing
from trainer import monitor as monitor_lib
from trainer import optimizer as optimizer_lib
from trainer.penalties import base as penalties_lib
from trainer import state as state_lib
from trainer import step as step_lib
from trainer import summaries


class NonFiniteLoss(RuntimeError):
  """A loss became NaN or Inf; the message names the step."""


class Preempted(RuntimeError):
  """Training stopped on request (SIGTERM, Ctrl-C) after saving its step."""


class ClusterFailure(RuntimeError):
  """Another task of the cluster stopped; the message says how to go on."""


# Errors of collective ops when a peer task is gone.
_PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                tf.errors.AbortedError, tf.errors.CancelledError)


@dataclasses.dataclass
class Session:
  """What the actions of one run work with."""
  config: ml_collections.ConfigDict
  workdir: str
  state: state_lib.GanState
  checkpointer: checkpoint_lib.Checkpointer
  writer: summaries.Writer
  monitor: monitor_lib.Monitor
  progress: summaries.Progress
  evaluator: evaluator_lib.Evaluator | None
  chief: bool
  # () -> whether any task was asked to stop; None: never asked.
  stop_agreed: Callable[[], bool] | None


@dataclasses.dataclass
class Stop:
  """One stop of the loop, as the actions see it.

  Attributes:
    step: the steps done.
    metrics: each metric's mean over the steps since the metrics were last
      read (at a stop with a due action that reads_metrics), over the steps
      it was computed on; empty where no due action reads them.
    first_bad: the first step with a NaN or Inf loss since the last stop,
      or -1.
    start: the stop before the first step of a new run.
    last: the stop at train.steps.
    saved: whether a checkpoint of this step was written (by an action).
  """
  step: int
  metrics: dict[str, float] = dataclasses.field(default_factory=dict)
  first_bad: int = -1
  start: bool = False
  last: bool = False
  saved: bool = False


@dataclasses.dataclass(frozen=True)
class Action:
  """One periodic piece of the loop's work: when (the fields) and what.

  Attributes:
    name: for the reader.
    do: (session, stop) -> None.
    every: runs at the steps that are multiples of it (0: never by steps).
    at_start: also before the first step of a new run.
    at_end: also at train.steps.
    every_stop: at every stop (after each call of the compiled loop).
    reads_metrics: reads Stop.metrics; the steps' sums are taken (and
      restart) only at stops where such an action is due.
  """
  name: str
  do: Callable[[Session, Stop], None]
  every: int = 0
  at_start: bool = False
  at_end: bool = True
  every_stop: bool = False
  reads_metrics: bool = False

  def due(self, stop: Stop) -> bool:
    if stop.start:
      return self.at_start
    return (self.every_stop or (self.at_end and stop.last)
            or bool(self.every and stop.step % self.every == 0))

  def next_step(self, step: int) -> int | None:
    """The first step after `step` at which it is due by its interval."""
    return (step // self.every + 1) * self.every if self.every else None


ActionBuilder = Callable[[ml_collections.ConfigDict, Session],
                         "Action | None"]
ACTIONS: list[tuple[float, ActionBuilder]] = []


def action(order: float) -> Callable[[ActionBuilder], ActionBuilder]:
  """Registers a builder (config, session) -> Action or None (not wanted).

  At a stop, the due actions run in the order of `order`.
  """

  def add(build: ActionBuilder) -> ActionBuilder:
    ACTIONS.append((order, build))
    return build

  return add


def make_actions(config: ml_collections.ConfigDict,
                 session: Session) -> list[Action]:
  built = [(order, build(config, session)) for order, build in ACTIONS]
  return [act for _, act in sorted(built, key=lambda pair: pair[0])
          if act is not None]


def next_stop(step: int, actions: list[Action],
              train: ml_collections.ConfigDict) -> int:
  """The nearest step at which an action is due (at most steps_per_loop on,
  and at most train.steps)."""
  candidates = [train.steps, step + train.steps_per_loop]
  candidates += [act.next_step(step) for act in actions if act.every]
  return min(candidates)


def _last_checkpoint(checkpointer: checkpoint_lib.Checkpointer) -> str:
  return (f"the last good checkpoint is {checkpointer.latest} (nothing was "
          "saved after it)" if checkpointer.latest
          else "no checkpoint had been written yet")


# The actions, in the order they run at a stop. ------------------------------


@action(order=0)
def _nan_stop(config, session) -> Action:
  """Stops the run, writing nothing more, when a loss became NaN or Inf."""
  del config

  def do(session: Session, stop: Stop) -> None:
    if stop.first_bad >= 0:
      session.writer.flush()
      raise NonFiniteLoss(
          f"a loss became NaN or Inf at step {stop.first_bad}; training "
          f"stopped, {_last_checkpoint(session.checkpointer)}")

  return Action("nan_stop", do, at_end=False, every_stop=True)


@action(order=10)
def _log(config, session) -> Action:
  """The metrics and the progress (examples/sec, time left): TensorBoard's
  scalars and one log line."""
  del session
  train = config.train

  def do(session: Session, stop: Stop) -> None:
    values = dict(stop.metrics)
    values.update(session.progress.update(stop.step))
    session.writer.scalars(stop.step, values)
    augment = f" r_t {values['augment/rt']:.3f}"
    if "augment/p" in values:
      augment += f" p {values['augment/p']:.3f}"
    logging.info(
        "step %d/%d | %.1f examples/sec | d_loss %.4f g_loss %.4f | "
        "D(real) %.3f D(fake) %.3f |%s | time left %s", stop.step,
        train.steps, values["perf/examples_per_sec"], values["losses/d"],
        values["losses/g"], values["d_output/real"], values["d_output/fake"],
        augment, summaries.format_duration(values["progress/seconds_left"]))

  return Action("log", do, every=train.log_every, reads_metrics=True)


@action(order=20)
def _images(config, session) -> Action:
  """The fixed-noise image grid and D's histograms on real and fake."""
  del session
  return Action("images", lambda session, stop: session.monitor.write(
      session.writer, stop.step), every=config.train.image_every,
                at_start=True)


@action(order=30)
def _checkpoint(config, session) -> Action:
  """The whole state, kept train.keep_checkpoints deep."""
  del session

  def do(session: Session, stop: Stop) -> None:
    session.checkpointer.save(stop.step)
    stop.saved = True

  return Action("checkpoint", do, every=config.train.checkpoint_every)


@action(order=40)
def _evaluate(config, session) -> Action | None:
  """The metrics of eval.* every train.eval_every steps; after the
  checkpoint, so that an evaluation that fails cannot cost it."""
  if session.evaluator is None:
    return None

  def do(session: Session, stop: Stop) -> None:
    if stop.start:
      # The untrained G's metrics: the curves' starting point. A run
      # stopped before its first checkpoint starts again from the same
      # untrained G and has them already: every worker still evaluates
      # (the evaluation's collectives need them all), and the chief, which
      # alone reads and writes the records, does not write them twice.
      session.evaluator.evaluate(stop.step, record=session.chief and 0 not in
                                 evaluator_lib.evaluated_steps(
                                     session.workdir))
    else:
      session.evaluator.evaluate(
          stop.step, session.checkpointer.latest if stop.saved else "")
    session.progress.restart(stop.step)

  return Action("evaluate", do, every=config.train.eval_every,
                at_start=config.train.eval_at_start)


@action(order=50)
def _preemption(config, session) -> Action | None:
  """All tasks agree to stop when any was asked to (SIGTERM, Ctrl-C); they
  save the step first."""
  del config
  if session.stop_agreed is None:
    return None

  def do(session: Session, stop: Stop) -> None:
    if session.stop_agreed():
      if not stop.saved:
        session.checkpointer.save(stop.step)
      session.writer.flush()
      raise Preempted(
          f"stopped on request at step {stop.step} after saving "
          f"{session.checkpointer.latest}; run the same command to resume")

  return Action("preemption", do, at_end=False, every_stop=True)


# Set-up. ------------------------------------------------------------------


def make_agreement(strategy: tf.distribute.Strategy):
  """Returns any_task(flag) -> whether `flag` is True on any task.

  A collective, so every task must call it at the same point of the loop;
  all of them then get the same answer and act at the same step.
  """

  @tf.function
  def any_task(flag: tf.Tensor) -> tf.Tensor:
    per_replica = strategy.run(lambda f: tf.cast(f, tf.int32), args=(flag,))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica,
                           axis=None) > 0

  return lambda flag: bool(any_task(tf.constant(flag)))


def _check_batch(config: ml_collections.ConfigDict, replicas: int) -> None:
  """The global batch, and each G penalty's share of it, split evenly."""
  global_batch = config.train.batch_size
  if global_batch % replicas:
    raise UserError(
        f"train.batch_size={global_batch} is not divisible by the "
        f"{replicas} replicas; use a multiple of {replicas}")
  for group in penalties_lib.penalty_groups(config.penalties, "g"):
    for name, penalty, _ in group.penalties:
      settings = config.penalties[name]
      count = penalty.examples(settings, global_batch)
      if count % replicas or count < 1:
        raise UserError(
            f"penalties.{name}.batch_shrink={settings.get('batch_shrink', 1)} "
            f"leaves {count} of train.batch_size={global_batch} "
            f"examples, which the {replicas} replica(s) cannot share; use a "
            f"batch_shrink that leaves a positive multiple of {replicas}")


def load_source(config: ml_collections.ConfigDict) -> sources.Source:
  """The training data of the config (data.*), checked against the model."""
  data = config.data
  return sources.keep_classes(sources.load(data.source, sources.Request(
      split=data.split, image_size=config.model.image_size,
      channels=config.model.channels, resize=data.resize,
      tfds_data_dir=data.tfds_data_dir, tfds_download=data.tfds_download,
      on_bad_image=data.on_bad_image)), data.classes)


def _step_reading(config: ml_collections.ConfigDict, source: sources.Source,
                  start_step: int) -> Callable[[int], str]:
  """Says at which step after `start_step` the example of an index is read.

  The input pipeline reads ahead, but it hands an element's error over only
  when that element is taken: at the first step that reads the index.
  """

  def where(index: int) -> str:
    step = pipeline.first_step_reading(
        index, source.num_examples, seed=config.seed,
        shuffle=config.data.shuffle, start_step=start_step,
        global_batch=config.train.batch_size, n_disc=config.train.n_disc)
    return f"at step {step}"

  return where


@contextlib.contextmanager
def _bad_images(checkpointer: checkpoint_lib.Checkpointer,
                where: Callable[[int], str]):
  """Turns a folder image that cannot be read into errors.BadImage.

  Args:
    checkpointer: says which checkpoint is the last good one.
    where: says where the example of an index was met ("at step 7").
  """
  try:
    yield
  except tf.errors.OpError as e:
    bad = errors.BadImage.found_in(e)
    if bad is None:
      raise
    raise errors.BadImage(
        bad.path, bad.reason, bad.index,
        met=f"{where(bad.index)}; training stopped, "
        f"{_last_checkpoint(checkpointer)}") from None


@contextlib.contextmanager
def _peer_failures(checkpointer: checkpoint_lib.Checkpointer):
  """Turns the collective ops' errors of a lost peer into ClusterFailure."""
  try:
    yield
  except _PEER_ERRORS as e:
    raise ClusterFailure(
        "another task of the cluster stopped or became unreachable "
        f"({str(e).strip().splitlines()[0][:300]}). Restart the job: it "
        f"resumes from the last checkpoint, {checkpointer.latest}") from None


def _restore_or_warm_start(checkpointer: checkpoint_lib.Checkpointer,
                           state: state_lib.GanState,
                           config: ml_collections.ConfigDict) -> None:
  """Resumes from the workdir's last checkpoint, or starts a new run's
  networks from init.from if it is set: resuming wins over it."""
  source = config.init["from"]
  if checkpointer.restore_latest():
    optimizer_lib.set_learning_rates(state.g_optimizer, state.d_optimizer,
                                     state.schedules, config)
    if source:
      logging.info("init.from=%s is ignored: the run resumes from its own "
                   "checkpoint %s", source, checkpointer.latest)
  elif source.endswith(".pkl"):
    conversion.warm_start(state, config, source)
  elif source:
    checkpoint_lib.warm_start(state, config)


def _run_due(actions: list[Action], session: Session, stop: Stop) -> None:
  for act in actions:
    if act.due(stop):
      act.do(session, stop)


# The controller. ----------------------------------------------------------


def run(config: ml_collections.ConfigDict, workdir: str,
        strategy: tf.distribute.Strategy,
        stop_requested: Callable[[], bool] | None = None) -> state_lib.GanState:
  """Trains until `train.steps`, resuming from the workdir.

  Args:
    config: the experiment config (resolved here: config.resolve).
    workdir: checkpoints, summaries and config.json.
    strategy: the distribution strategy.
    stop_requested: polled after every call of the compiled loop (e.g. "was
      SIGTERM or Ctrl-C received", trainer/signals.py); when it is True on
      any task, all tasks save a checkpoint at the current step and raise
      Preempted.

  Returns:
    The training state at the end (its `step` is train.steps).

  Raises:
    UserError: bad config, data or workdir; raised before anything is written.
    NonFiniteLoss: a loss became NaN or Inf (no checkpoint is written after).
    Preempted: stop_requested() became True; the current step was saved.
    ClusterFailure: another task stopped; the last checkpoint is intact.
    errors.BadImage: an image could not be read (data.on_bad_image=stop);
      the last checkpoint is intact.
  """
  # The config, the data and the workdir are checked before anything runs.
  config = config_lib.resolve(config)
  _check_batch(config, strategy.num_replicas_in_sync)
  if config.runtime.jit_compile:
    distribute.check_xla(strategy)
  source = load_source(config)
  sources.check_classes(source, config.model.num_classes)
  config_lib.check_compatible(config, workdir)

  # The state, restored from the workdir's last checkpoint if there is one,
  # else a new run's, its networks from init.from if it names a run.
  state = state_lib.build_state(config, strategy)
  # train.freeze_d is within D's layers, checked before anything is written.
  freezing.frozen_layers(config.model, state.discriminator,
                         config.train.freeze_d)
  chief = distribute.is_chief(strategy)
  checkpointer = checkpoint_lib.Checkpointer(
      workdir, state.trackables(), keep=config.train.keep_checkpoints,
      is_chief=chief)
  _restore_or_warm_start(checkpointer, state, config)
  step, train = int(state.step.numpy()), config.train
  evaluator = (evaluator_lib.Evaluator(config, strategy, state, workdir,
                                       is_chief=chief)
               if train.eval_every and step < train.steps else None)
  config_lib.log_and_write(config, workdir, write=chief)
  if step >= train.steps:
    logging.info("Already trained to step %d (train.steps=%d); nothing to do",
                 step, train.steps)
    return state

  # The compiled steps, the summaries and the actions.
  writer = summaries.Writer(os.path.join(workdir, "train") if chief else None)
  writer.text(step, "config", "    " + config_lib.to_json(config).replace(
      "\n", "\n    "))
  train_steps = step_lib.make_train_steps(config, strategy, state, source,
                                          step)
  with _bad_images(checkpointer, lambda index: (
      f"at start, reading the first {train.histogram_samples} "
      "examples for D's histograms")):
    monitor = monitor_lib.Monitor(strategy, state, config,
                                  pipeline.first_examples(
                                      source, train.histogram_samples))
  any_task = make_agreement(strategy) if stop_requested else None
  session = Session(
      config, workdir, state, checkpointer, writer, monitor,
      summaries.Progress(total_steps=train.steps,
                         examples_per_step=train.batch_size, start_step=step),
      evaluator, chief,
      (lambda: any_task(stop_requested())) if any_task else None)
  actions = make_actions(config, session)
  logging.info("Training from step %d to %d on %s", step, train.steps,
               source.description)

  # The loop: train to the next stop, then run the actions due there.
  if step == 0:
    _run_due(actions, session, Stop(step, start=True))
  while step < train.steps:
    stop = next_stop(step, actions, train)
    # Any collective can be the first to meet a lost peer: the training
    # steps, a checkpoint's, an evaluation's or the stop agreement.
    with _peer_failures(checkpointer), _bad_images(
        checkpointer, _step_reading(config, source, step)):
      last = stop == train.steps
      reads = any(act.reads_metrics and act.due(Stop(stop, last=last))
                  for act in actions)
      metrics, first_bad = train_steps(stop - step, take=reads)
      step = stop
      _run_due(actions, session, Stop(step, metrics, first_bad, last=last))
  writer.flush()
  return state
