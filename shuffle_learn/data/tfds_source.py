"""The base of the sources that read a prepared TFDS dataset with random access.

`tfds.data_source` reads a prepared dataset (array_record files) by index,
which grain loads directly; TFDS's builders import TensorFlow, so TFDS is
imported only when a source is opened (the `tfds` extra).
"""

from __future__ import annotations

from typing import Any


class TFDSSource:
  """`__len__` and `num_classes` of a source over ``tfds.data_source``; subclasses call `_open` and set ``class_names``."""

  class_names: tuple[str, ...] = ()

  def _open(self, name: str, split: str, data_dir: str | None) -> Any:
    """Opens ``name``'s ``split`` (a TFDS split, slices allowed); returns the dataset's features."""
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  # It pulls in TensorFlow.
    self._source = tfds.data_source(name, split=split, data_dir=data_dir)
    return self._source.dataset_info.features

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  def __len__(self) -> int:
    return len(self._source)
