"""Images as random-access sources in the image schema: a folder of images, or a TFDS dataset.

Both sources give ``{"image": uint8 (H, W, C), "label": int32}``
(`shuffle_learn.data.schema`), every image brought to the same ``size`` and
``channels`` by `to_array`:

  any Pillow image
    -> with an alpha channel (RGBA, LA, a palette or grey image with a
       transparent colour): composited over ``background``, so that a fully
       transparent pixel becomes the background colour (before resizing, so
       that the colour of transparent pixels never bleeds into the edges)
    -> RGB (``channels=3``) or L (``channels=1``, ITU-R 601 luma); or, with
       ``channels=4``, RGBA with its alpha kept and nothing composited (for
       sprites cut out by their alpha; Pillow resizes it premultiplied)
    -> resized to ``size = (height, width)``, aspect ratio not kept: BOX (the
       mean over each output pixel's area) when shrinking along both axes,
       bilinear otherwise.

`ImageFolderSource` reads ``root/<class>/<file>`` (``.png``, ``.jpg``,
``.jpeg``), the convention of torchvision's ``ImageFolder`` (one level, not
recursive; TFDS's ``ImageFolder`` adds a split level above it). Classes are the
sub-folders sorted by name, labels their indices. A file's split is a function
of its key alone (by default its stem; ``split_key`` maps stems to group keys
so that near-duplicates share a split): ``u`` = the first 8 bytes of
sha256(key), big-endian, over 2**64; train if ``u < 0.8``, valid if ``u <
0.9``, else test. Adding or removing files never moves another file between
splits, and the split is the same on every machine and Python hash seed.

`TFDSImageSource` reads the paper's ``imagenet2012`` (pre-training) and
``voc/2012`` (downstream, multi-label) and ``cifar10`` with
``tfds.data_source`` (array_record, random access). The project's splits are
TFDS splits or slices of them (`TFDS_SPLITS`): valid is the tail of TFDS's
train split, test the held-out split that has labels. VOC examples also carry
``labels``, an int32 multi-hot vector over the 20 classes of ``objects/label``;
their ``label`` is the first object's class (-1 for an image without objects).
TFDS (and with it TensorFlow) is imported only when a `TFDSImageSource` is
built, as in `shuffle_learn.data.nsynth`.

References:
  Deng et al. ImageNet: A Large-Scale Hierarchical Image Database. CVPR 2009.
  Everingham et al. The PASCAL Visual Object Classes (VOC) Challenge. IJCV 2010.
  Krizhevsky. Learning Multiple Layers of Features from Tiny Images. 2009 (CIFAR-10).
"""

from __future__ import annotations

import bisect
import json
import os
from typing import Mapping, Sequence

import numpy as np
from PIL import Image

from shuffle_learn import _checks
from shuffle_learn.data import schema
from shuffle_learn.data import tfds_source

SPLITS = schema.SPLITS
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_READ_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)

# The project's split -> the TFDS split it reads, per dataset.
TFDS_SPLITS = {
    "imagenet2012": {"train": "train[:99%]", "valid": "train[99%:]", "test": "validation"},
    "cifar10": {"train": "train[:90%]", "valid": "train[90%:]", "test": "test"},
    "voc/2012": {"train": "train[:90%]", "valid": "train[90%:]", "test": "validation"},
}
MULTI_LABEL = ("voc/2012",)  # Datasets whose classes are ``objects/label``, several per image.


def split_of(key: str) -> str:
  """"train", "valid" or "test": the split of the file (or group) ``key``, 0.8 / 0.1 / 0.1."""
  return SPLITS[bisect.bisect_right(schema.SPLIT_BOUNDS, schema.unit_hash(key))]


def _check_image_args(size, channels, background=(255, 255, 255)):
  size = _checks.check_ints("size", size, 1, 1 << 16)
  if len(size) != 2:
    raise ValueError(f"size must be (height, width), got {size!r}.")
  _checks.check_choice("channels", channels, (1, 3, 4))
  background = _checks.check_ints("background", background, 0, 255)
  if len(background) != 3:
    raise ValueError(f"background must be an (r, g, b) colour, got {background!r}.")
  return size, background


def to_array(image: Image.Image, size: Sequence[int], channels: int,
             background: Sequence[int] = (255, 255, 255)) -> np.ndarray:
  """A Pillow image -> uint8 ``(height, width, channels)``, as the module docstring says."""
  if image.mode in ("I;16", "I;16L", "I;16B", "I"):  # 16-bit grey: Pillow's convert would clip at 255.
    image = Image.fromarray(np.clip(np.asarray(image, np.float64) / 257.0 + 0.5, 0, 255).astype(np.uint8))
  elif image.mode == "F":
    raise ValueError("floating-point images (Pillow mode F) are not supported.")
  if channels == 4:
    image = image.convert("RGBA")
  elif image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
    image = image.convert("RGBA")
    image = Image.alpha_composite(Image.new("RGBA", image.size, (*background, 255)), image)
  image = image.convert({1: "L", 3: "RGB", 4: "RGBA"}[channels])
  height, width = size
  if image.size != (width, height):
    shrinking = image.width >= width and image.height >= height
    image = image.resize((width, height), Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR)
  array = np.asarray(image, np.uint8)
  return array[:, :, None] if channels == 1 else array


def _group_keys(split_key, root: str) -> Mapping[str, str] | None:
  if split_key is None or isinstance(split_key, Mapping):
    return split_key
  if isinstance(split_key, (str, os.PathLike)):
    path = os.path.join(root, split_key)  # An absolute path stays as it is.
    try:
      with open(path, encoding="utf-8") as f:
        mapping = json.load(f)
    except (OSError, ValueError) as e:
      raise ValueError(f"split_key: cannot read the JSON mapping {path!r} ({e}).") from None
    if not isinstance(mapping, dict):
      raise ValueError(f"split_key: {path!r} must hold a JSON object (file stem -> group key).")
    return mapping
  raise ValueError(f"split_key must be None, a mapping from file stem to group key, or the path of a JSON file "
                   f"holding one, got {type(split_key).__name__}.")


class ImageFolderSource:
  """grain-compatible random-access source over ``root/<class>/<file>``, in the image schema.

  Every image of the split is opened and checked once at construction
  (Pillow's ``verify``: the header and, for PNG, every chunk's checksum); a
  file that still fails to decode later raises naming its path.

  Args:
    root: the folder of class folders. Files directly in ``root`` (such as a
      ``groups.json``), hidden entries and files of other extensions are ignored.
    split: "train", "valid" or "test".
    size: ``(height, width)`` of the images given.
    channels: 3 (RGB), 1 (grey) or 4 (RGBA, alpha kept; the jigsaw reads 1 or 3).
    background: the RGB colour transparent pixels are composited over.
    split_key: None (a file's key is its stem), a mapping from every file stem
      to its group key, or the path of a JSON file holding one (relative to
      ``root`` unless absolute), e.g. the ``groups.json`` of
      `shuffle_learn.data.emoji`.

  Attributes:
    class_names: the class folders, sorted; ``label`` indexes them.
    num_classes: ``len(class_names)``.
    files: the split's images, as paths relative to ``root``, in a fixed order.
    labels: int32 ``(len(self),)``, the label of each file.

  Raises:
    ValueError: a bad argument; ``root`` without class folders; a class folder
      without images; a stem missing from ``split_key``; an empty split; an
      image file Pillow cannot read (the message names every such file).
  """

  def __init__(self, root: str, split: str = "train", *, size: Sequence[int] = (64, 64), channels: int = 3,
               background: Sequence[int] = (255, 255, 255), split_key=None):
    _checks.check_choice("split", split, SPLITS)
    self.size, self.background = _check_image_args(size, channels, background)
    self.root, self.split, self.channels = os.fspath(root), split, channels
    if not os.path.isdir(self.root):
      raise ValueError(f"root {self.root!r} is not a folder.")
    groups = _group_keys(split_key, self.root)
    self.class_names = tuple(sorted(
        name for name in os.listdir(self.root)
        if not name.startswith(".") and os.path.isdir(os.path.join(self.root, name))))
    if not self.class_names:
      raise ValueError(f"root {self.root!r} has no class folders (root/<class>/<image>).")
    files, labels, total, missing = [], [], 0, []
    for label, name in enumerate(self.class_names):
      folder = os.path.join(self.root, name)
      images = sorted(
          f for f in os.listdir(folder)
          if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, f)))
      if not images:
        raise ValueError(f"class folder {folder!r} has no images ({', '.join(IMAGE_EXTENSIONS)}).")
      total += len(images)
      for image in images:
        stem = os.path.splitext(image)[0]
        if groups is not None and stem not in groups:
          missing.append(os.path.join(name, image))
          continue
        if split_of(str(groups[stem]) if groups is not None else stem) == split:
          files.append(os.path.join(name, image))
          labels.append(label)
    if missing:
      raise ValueError(f"split_key has no group for {len(missing)} file stems, e.g. {missing[:5]}.")
    if not files:
      raise ValueError(f"the {split!r} split of {self.root!r} is empty: its {total} images all hash to other "
                       f"splits (add images, or use fewer, larger groups in split_key).")
    unreadable = []
    for file in files:
      try:
        with Image.open(os.path.join(self.root, file)) as image:
          image.verify()
      except _READ_ERRORS as e:
        unreadable.append(f"{os.path.join(self.root, file)} ({type(e).__name__}: {e})")
    if unreadable:
      raise ValueError(f"{len(unreadable)} image files cannot be read: {'; '.join(unreadable[:5])}.")
    self.files = tuple(files)
    self.labels = np.asarray(labels, np.int32)

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  def __len__(self) -> int:
    return len(self.files)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    path = os.path.join(self.root, self.files[index])
    try:
      with Image.open(path) as image:
        array = to_array(image, self.size, self.channels, self.background)
    except _READ_ERRORS as e:
      raise ValueError(f"cannot decode image {path!r} ({type(e).__name__}: {e}).") from None
    return {"image": array, "label": np.int32(self.labels[index])}

  def __repr__(self) -> str:
    return (f"ImageFolderSource({self.root!r}, {self.split!r}, size={self.size}, channels={self.channels}): "
            f"{len(self)} images, {self.num_classes} classes")


class TFDSImageSource(tfds_source.TFDSSource):
  """grain-compatible random-access source over a TFDS image dataset, in the image schema.

  Args:
    name: "imagenet2012", "cifar10" or "voc/2012" (the keys of `TFDS_SPLITS`).
    split: "train", "valid" or "test", read as ``TFDS_SPLITS[name][split]``.
    data_dir: where TFDS keeps the prepared dataset (TFDS's default if None).
    size: ``(height, width)`` of the images given.
    channels: 3 (RGB), 1 (grey) or 4 (RGBA, opaque).

  Attributes:
    class_names, num_classes: from the TFDS dataset info.
    multi_label: True for VOC, whose examples also hold ``labels``, int32
      ``(num_classes,)`` multi-hot.
  """

  def __init__(self, name: str, split: str = "train", *, data_dir: str | None = None,
               size: Sequence[int] = (64, 64), channels: int = 3):
    _checks.check_choice("name", name, tuple(TFDS_SPLITS))
    _checks.check_choice("split", split, SPLITS)
    self.size, _ = _check_image_args(size, channels)
    self.name, self.split, self.data_dir, self.channels = name, split, data_dir, channels
    self.multi_label = name in MULTI_LABEL
    features = self._open(name, TFDS_SPLITS[name][split], data_dir)
    label = features["objects"]["label"] if self.multi_label else features["label"]
    self.class_names = tuple(label.names)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    example = self._source[index]
    out = {"image": to_array(Image.fromarray(np.asarray(example["image"], np.uint8)), self.size, self.channels)}
    if self.multi_label:
      objects = np.asarray(example["objects"]["label"], np.int64).reshape(-1)
      labels = np.zeros(self.num_classes, np.int32)
      labels[objects] = 1
      out["labels"] = labels
      out["label"] = np.int32(objects[0] if objects.size else -1)
    else:
      out["label"] = np.int32(example["label"])
    return out

  def __repr__(self) -> str:
    return (f"TFDSImageSource({self.name!r}, {self.split!r}, data_dir={self.data_dir!r}, size={self.size}, "
            f"channels={self.channels})")
