"""Data sources and the sharded input pipeline."""

# Registers the packed: source (it builds on trainer.data.sources).
from trainer.data import packed  # pylint: disable=unused-import
