"""Labelled video through TFDS (UCF101), as a random-access source in the video schema.

`TFDSVideoSource` reads a TFDS video dataset with ``tfds.data_source``
(array_record, random access) and gives ``{"video": uint8 (T, H, W, 3),
"label": int32}`` (`shuffle_learn.data.schema`): ``num_frames`` frames taken
uniformly over the clip (the middle frame of each of ``num_frames`` equal
segments, as TSN samples; frames repeat when a clip is shorter), each resized
to ``size`` by `images.to_array`. The project's splits are TFDS splits or
slices of them (`TFDS_SPLITS`): valid is the tail of TFDS's train split.
TFDS's video builders import TensorFlow, so this needs the `tfds` extra; the
data itself cannot be downloaded on this project's machines (UCF101 must be
prepared with ``tfds build ucf101`` where it can be).

References:
  Soomro, Zamir, Shah. UCF101: A Dataset of 101 Human Actions Classes From
  Videos in The Wild. arXiv:1212.0402, 2012.
  Wang et al. Temporal Segment Networks. ECCV 2016 (segment sampling).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from shuffle_learn import _checks
from shuffle_learn.data import images
from shuffle_learn.data import tfds_source

SPLITS = ("train", "valid", "test")
# The project's split -> the TFDS split it reads, per dataset (the name before any "/config").
TFDS_SPLITS = {"ucf101": {"train": "train[:90%]", "valid": "train[90%:]", "test": "test"}}


def frame_indices(length: int, num_frames: int) -> np.ndarray:
  """int64 ``(num_frames,)``: the middle frame of each of ``num_frames`` equal segments of ``length`` frames."""
  length = _checks.check_int("length", length, 1)
  num_frames = _checks.check_int("num_frames", num_frames, 1)
  return (2 * np.arange(num_frames, dtype=np.int64) + 1) * length // (2 * num_frames)


def to_clip(video: np.ndarray, num_frames: int, size: Sequence[int]) -> np.ndarray:
  """A decoded video uint8 ``(length, h, w, 3)`` -> uint8 ``(num_frames, *size, 3)``."""
  video = np.asarray(video)
  if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3 or not video.shape[0]:
    raise ValueError(f"video must be uint8 (frames, height, width, 3) with frames >= 1, got {video.dtype} "
                     f"{video.shape}.")
  return np.stack([images.to_array(Image.fromarray(video[i]), size, 3)
                   for i in frame_indices(len(video), num_frames)])


class TFDSVideoSource(tfds_source.TFDSSource):
  """grain-compatible random-access source over a TFDS video dataset, in the video schema.

  Args:
    split: "train", "valid" or "test", read as ``TFDS_SPLITS[name][split]``.
    name: a TFDS name whose dataset is a key of `TFDS_SPLITS`, with or without
      a config: "ucf101" (TFDS's default config, ``ucf101_1_256``) or e.g.
      "ucf101/ucf101_2".
    data_dir: where TFDS keeps the prepared dataset (TFDS's default if None).
    num_frames: T, frames per clip (the paper: 20).
    size: ``(height, width)`` of the frames.

  Attributes:
    class_names: the dataset's label names; ``label`` indexes them.
  """

  def __init__(self, split: str = "train", *, name: str = "ucf101", data_dir: str | None = None,
               num_frames: int = 20, size: Sequence[int] = (32, 32)):
    _checks.check_choice("split", split, SPLITS)
    _checks.check_string("name", name)
    _checks.check_choice("name", name.split("/")[0], tuple(TFDS_SPLITS))
    if data_dir is not None:
      _checks.check_string("data_dir", data_dir)
    self.num_frames = _checks.check_int("num_frames", num_frames, 1)
    self.size = _checks.check_ints("size", size, 1, 1 << 14)
    if len(self.size) != 2:
      raise ValueError(f"size must be (height, width), got {size!r}.")
    self.split, self.name, self.data_dir = split, name, data_dir
    features = self._open(name, TFDS_SPLITS[name.split("/")[0]][split], data_dir)
    self.class_names = tuple(features["label"].names)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    example = self._source[index]
    return {"video": to_clip(example["video"], self.num_frames, self.size), "label": np.int32(example["label"])}

  def __repr__(self) -> str:
    return (f"TFDSVideoSource({self.split!r}, name={self.name!r}, data_dir={self.data_dir!r}, "
            f"num_frames={self.num_frames}, size={self.size})")
