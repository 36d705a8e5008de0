"""Tests of data.classes: sources.keep_classes, for training and evaluation."""

import pathlib

import numpy as np
import pytest
from PIL import Image

from tests.conftest import cpu_strategy, load_config
from tests.data import read_all
from trainer.data import packed
from trainer.data import sources
from trainer.errors import UserError
from trainer import loop
from trainer.metrics import evaluator
from trainer import step as step_lib

TINY = {"model.g_width": 8, "model.d_width": 8, "train.batch_size": 8}


def _embedded(split: str = "test") -> sources.Source:
  return sources.load("embedded:mnist", sources.Request(
      split=split, image_size=28, channels=1, resize=False))


@pytest.mark.parametrize("classes", ["0,1,2,3,4", "5, 6,7,8,9", "3", "9,3"])
def test_the_kept_examples_are_exactly_those_of_the_classes(classes):
  everything, wanted = _embedded(), sources.parse_classes(classes)
  images, labels = read_all(everything)
  expected = np.isin(labels, wanted)
  kept = sources.keep_classes(everything, classes)
  kept_images, kept_labels = read_all(kept)
  assert kept.num_examples == expected.sum()
  np.testing.assert_array_equal(kept_images, images[expected])
  np.testing.assert_array_equal(kept_labels, labels[expected])
  np.testing.assert_array_equal(kept.labels(), labels[expected])
  assert kept.num_classes == 10 and kept.image_shape == (28, 28, 1)
  assert kept.description == (
      f"embedded:mnist classes {','.join(map(str, wanted))}")


def test_the_counts_of_mnists_test_digits():
  # MNIST's test split: 5139 digits 0-4 and 4861 digits 5-9.
  assert sources.keep_classes(_embedded(), "0,1,2,3,4").num_examples == 5139
  assert sources.keep_classes(_embedded(), "5,6,7,8,9").num_examples == 4861
  assert sources.keep_classes(_embedded(), "").num_examples == 10_000


def test_the_split_is_taken_first_then_the_classes():
  first = _embedded("test[:1000]")
  _, labels = read_all(first)
  kept = sources.keep_classes(first, "5,6,7,8,9")
  assert kept.num_examples == (labels >= 5).sum()
  assert 400 < kept.num_examples < 600
  _, all_labels = read_all(_embedded())
  np.testing.assert_array_equal(read_all(kept)[1],
                                all_labels[:1000][all_labels[:1000] >= 5])


def _unlabelled(tmp_path: pathlib.Path) -> sources.Source:
  for i in range(3):
    Image.fromarray(np.full((8, 8), i, np.uint8)).save(tmp_path / f"{i}.png")
  return sources.load(f"folder:{tmp_path}", sources.Request(
      split="train", image_size=8, channels=1, resize=False))


@pytest.mark.parametrize("classes, message", [
    ("0,x", r"data.classes='0,x': 'x' is not a class number"),
    ("1.5", r"'1.5' is not a class number"),
    ("-1", r"'-1' is not a class number"),
    ("3,10", r"class 10 is not one of the 10 classes \(0..9\) of "
             "embedded:mnist"),
])
def test_bad_classes_are_one_line(classes, message):
  with pytest.raises(UserError, match=message) as raised:
    sources.keep_classes(_embedded(), classes)
  assert "\n" not in str(raised.value)


def test_no_example_left_is_refused():
  # The first 5 test digits are 7, 2, 1, 0, 4.
  with pytest.raises(UserError, match="has no example of these classes"):
    sources.keep_classes(_embedded("test[:5]"), "5,6")


def test_a_source_without_labels_is_refused(tmp_path):
  with pytest.raises(UserError, match="folder:.* has no labels"):
    sources.keep_classes(_unlabelled(tmp_path), "0")


def test_a_source_that_cannot_list_its_labels_is_refused():
  digits = _embedded("test[:100]")
  unlisted = sources.Source("tfds:big", digits.num_examples,
                            digits.image_shape, 10, digits.read)
  with pytest.raises(UserError, match="tfds:big cannot list its labels "
                     "without decoding every image"):
    sources.keep_classes(unlisted, "1")


def test_a_packed_dataset_reads_its_labels_for_the_classes(mnist_dir,
                                                          tmp_path):
  packed.create(packed.Settings(source=f"idx:{mnist_dir}", split="test[:40]",
                                shard_size=16), str(tmp_path / "digits"),
                workers=1)
  source = sources.load(f"packed:{tmp_path / 'digits'}", sources.Request(
      split="x[5:]", image_size=28, channels=1, resize=False))
  images, labels = read_all(source)
  kept = sources.keep_classes(source, "1,7")
  kept_images, kept_labels = read_all(kept)
  np.testing.assert_array_equal(kept_labels, labels[np.isin(labels, [1, 7])])
  np.testing.assert_array_equal(kept_images,
                                images[np.isin(labels, [1, 7])])


def test_the_evaluation_follows_the_classes_unless_it_has_its_own_split():
  config = load_config(**{"data.classes": "5,6,7,8,9"})
  assert set(read_all(evaluator.real_source(config))[1]) == {5, 6, 7, 8, 9}
  config.eval.split = "test"
  assert evaluator.real_source(config).num_examples == 10_000


def test_eval_classes_choose_the_real_images_of_an_evaluation():
  # The fine-tuning experiment: train on a few digits of test[:1000],
  # compare with every test digit of those classes.
  config = load_config(**{"data.split": "test[:1000]",
                          "data.classes": "5,6,7,8,9", "eval.split": "test",
                          "eval.classes": "5,6,7,8,9"})
  labels = read_all(evaluator.real_source(config))[1]
  _, every_label = read_all(_embedded())
  assert set(labels) == {5, 6, 7, 8, 9}
  assert len(labels) == np.isin(every_label, [5, 6, 7, 8, 9]).sum() > 1000
  config.eval.classes = "5,x"
  with pytest.raises(UserError, match="eval.classes='5,x': 'x' is not a "):
    evaluator.real_source(config)


def test_a_run_trains_on_the_kept_classes_only(tmp_path, monkeypatch):
  trained_on = []
  make_train_steps = step_lib.make_train_steps

  def recording(config, strategy, state, source, step):
    trained_on.append(source)
    return make_train_steps(config, strategy, state, source, step)

  monkeypatch.setattr(step_lib, "make_train_steps", recording)
  config = load_config(**TINY, **{
      "data.split": "test[:1000]", "data.classes": "5,6,7,8,9",
      "model.num_classes": 10, "train.steps": 2, "train.steps_per_loop": 2,
      "train.log_every": 2, "train.image_every": 100,
      "train.checkpoint_every": 100, "train.eval_every": 0})
  state = loop.run(config, str(tmp_path), cpu_strategy(1))
  assert int(state.step.numpy()) == 2
  (source,) = trained_on
  _, labels = read_all(source)
  assert source.description == "embedded:mnist classes 5,6,7,8,9"
  assert set(labels) == {5, 6, 7, 8, 9} and len(labels) < 600
