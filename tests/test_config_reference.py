"""The generated configuration reference (trainer/config_reference.py)."""

import pathlib
import re
import textwrap

import pytest

from trainer import config as config_lib
from trainer import config_reference

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def page() -> str:
  return config_reference.generate()


def _leaves(config: dict, prefix: str = ""):
  for key, value in config.items():
    if isinstance(value, dict):
      yield from _leaves(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}"


def test_committed_page_is_what_the_code_generates(page):
  committed = pathlib.Path(config_reference.PAGE)
  assert committed.exists() and committed.read_text() == page, (
      "docs/config-reference.md differs from the code; regenerate it with: "
      f"{config_reference.COMMAND}")


def test_every_field_of_the_default_config_is_listed(page):
  config = config_lib.resolve(
      config_lib.from_file(str(REPO / "configs" / "dcgan_mnist.py")))
  fields = list(_leaves(config.to_dict()))
  assert len(fields) > 50
  missing = [f for f in fields if f"| `{f}` |" not in page]
  assert not missing


def test_every_registry_and_its_names_are_listed(page):
  kinds = set()
  for path in (REPO / "trainer").rglob("*.py"):
    kinds.update(re.findall(r'= Registry\(\s*"([^"]+)"', path.read_text()))
  assert {"loss", "penalty", "architecture", "data source", "metric",
          "strategy"} <= kinds
  for kind in kinds:
    assert f"### {kind}: " in page
  assert "| `rpgan` |" in page and "| `embedded` |" in page


def test_help_covers_its_group_up_to_a_blank_line_or_comment(tmp_path):
  path = tmp_path / "experiment.py"
  path.write_text(textwrap.dedent('''\
      def get_config(arg=None):
        config = ml_collections.ConfigDict()
        # Widths of G and D.
        config.model.g_width = 64
        config.model.d_width = 64
        config.train.steps = 10  # how long
        config.model.dropout = 0.3

        config.model.latent = 100
        # One comment
        # over two lines.
        config.optim.lr, config.optim.beta = 1e-3, 0.5
        config.optim.eps = 1e-7  # own
        config.optim.decay = 0.0
        config.penalties[name].weight = 1.0
        config.init["from"] = ""  # a field named by a keyword
      '''))
  assert config_reference.field_help(str(path)) == {
      "model.g_width": "Widths of G and D.",
      "model.d_width": "Widths of G and D.",
      "train.steps": "how long",
      "model.dropout": "",
      "model.latent": "",
      "optim.lr": "One comment over two lines.",
      "optim.beta": "One comment over two lines.",
      "optim.eps": "own",
      "optim.decay": "",
      "init.from": "a field named by a keyword",
  }


def test_an_architectures_fields_take_help_as_config_files_do(tmp_path):
  path = tmp_path / "models.py"
  path.write_text(textwrap.dedent('''\
      ARCHITECTURES.register("small")(Architecture(
          build=build,
          fields={
              # Widths of G and D.
              "g_width": 64,
              "d_width": 64,
              "dropout": 0.3,  # after each layer
              "bias": True,

              "depth": 4,
          },
          positive=("g_width",)))
      OTHER.register("skipped")(Architecture(fields={"x": 1}))  # not ours
      '''))
  assert config_reference.fields_help(str(path), "ARCHITECTURES") == {
      "small": {"g_width": "Widths of G and D.",
                "d_width": "Widths of G and D.", "dropout": "after each layer",
                "bias": "", "depth": ""}}
