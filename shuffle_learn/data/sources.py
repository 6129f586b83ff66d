"""Data sources by config name, and the batches the trainer and evaluators read from them.

`SOURCES` maps ``config.data.source`` to the modality it serves and a builder
``(config, split) -> source``; every source is a grain random-access source of
flat example dicts (`shuffle_learn.data.schema`). Nothing here imports the
trainer: evaluators, `shuffle_learn.embed` and the benchmarks read data
through this module.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import grain
import jax
import numpy as np

from shuffle_learn import _checks
from shuffle_learn.data import loader
from shuffle_learn.data import schema


def _gm_notes(config, split: str):
  from shuffle_learn.data import gm_notes  # pylint: disable=g-import-not-at-top
  return gm_notes.GMNotesSource(
      split, soundfonts=config.data.soundfonts or None, programs=config.data.programs,
      pitches=config.data.pitches, velocities=tuple(config.data.velocities),
      clip_seconds=config.features.seconds)  # Renders only the audio the front end uses.


def _nsynth(config, split: str):
  from shuffle_learn.data import nsynth  # pylint: disable=g-import-not-at-top
  return nsynth.NSynthSource(split, config=config.data.tfds_config, data_dir=config.data.tfds_data_dir or None)


def _check_notes(data) -> None:
  """The fields of ``config.data`` the note sources read (messages start with the field's name, missing ones too)."""
  for name in ("soundfonts", "tfds_config", "tfds_data_dir"):
    _checks.check_string(name, _checks.get(data, name, ""))
  for name, low, high in (("programs", 0, 127), ("pitches", 0, 127), ("velocities", 1, 127)):
    value = _checks.get(data, name, "")
    if value is not None or name == "velocities":
      _checks.check_ints(name, value, low, high)


def _spoken_words(config, split: str):
  from shuffle_learn.data import spoken_words  # pylint: disable=g-import-not-at-top
  return spoken_words.SpokenWordsSource(split, seconds=config.features.seconds)  # 10 words, 112 voices.


def _check_spoken_words(data) -> None:
  """spoken_words reads no ``config.data`` field: its words, voices, rates and pitches are the module's defaults."""
  del data


def _sound_events(config, split: str):
  from shuffle_learn.data import sound_events  # pylint: disable=g-import-not-at-top
  return sound_events.SoundEventsSource(split, num_examples=config.data.num_clips[schema.SPLITS.index(split)],
                                        seconds=config.features.seconds, seed=config.data.clip_seed)


def _check_sound_events(data) -> None:
  """The fields of ``config.data`` the sound-event source reads."""
  num_clips = _checks.check_ints("num_clips", _checks.get(data, "num_clips", ""), 1, 10**9)
  if len(num_clips) != 3:
    raise ValueError(f"num_clips must be (train, valid, test) mixture counts, got {num_clips!r}.")
  _checks.check_int("clip_seed", _checks.get(data, "clip_seed", ""), 0)


def _audio_mix(config, split: str):
  from shuffle_learn.data import audio_mix  # pylint: disable=g-import-not-at-top
  per_source = config.data.mix_examples[schema.SPLITS.index(split)]
  return audio_mix.AudioMixSource(
      [SOURCES[name].build(config, split) for name in config.data.mix], names=tuple(config.data.mix),
      num_samples=int(round(config.features.seconds * schema.SAMPLE_RATE)), per_source=per_source or None,
      seed=config.seed)  # Each sub-source reads its own fields of config.data.


def _check_audio_mix(data) -> None:
  """The fields of ``config.data`` the audio mix reads, and those of each source it mixes."""
  mixable = tuple(name for name, s in SOURCES.items() if s.modality == "audio" and name != "audio_mix")
  mix = _checks.get(data, "mix", "")
  if isinstance(mix, (str, bytes)) or not isinstance(mix, Sequence) or not mix:
    raise ValueError(f"mix must be a non-empty tuple of names of audio sources {mixable}, got {mix!r}.")
  for name in mix:
    _checks.check_choice("mix", name, mixable)
  if len(set(mix)) != len(mix):
    raise ValueError(f"mix has repeated entries: {tuple(mix)!r}.")
  mix_examples = _checks.check_ints("mix_examples", _checks.get(data, "mix_examples", ""), 0, 10**9)
  if len(mix_examples) != 3:
    raise ValueError(f"mix_examples must be (train, valid, test) caps per source (0: all), got {mix_examples!r}.")
  for check in dict.fromkeys(SOURCES[name].check for name in mix):  # Each check once (gm_notes, nsynth share one).
    check(data)


def _image_shape(config) -> dict:
  return {"size": (config.image.height, config.image.width), "channels": config.image.channels}


def _emoji(config, split: str):
  from shuffle_learn.data import emoji  # pylint: disable=g-import-not-at-top
  from shuffle_learn.data import images  # pylint: disable=g-import-not-at-top
  root = config.data.image_root or emoji.default_root()
  emoji.build(root)  # Downloads (npm) and writes once; afterwards only reads root/build.json.
  return images.ImageFolderSource(root, split, background=tuple(config.data.image_background),
                                  split_key="groups.json", **_image_shape(config))


def _image_folder(config, split: str):
  from shuffle_learn.data import images  # pylint: disable=g-import-not-at-top
  return images.ImageFolderSource(config.data.image_root, split, background=tuple(config.data.image_background),
                                  split_key=config.data.image_groups or None, **_image_shape(config))


def _tfds_images(config, split: str):
  from shuffle_learn.data import images  # pylint: disable=g-import-not-at-top
  return images.TFDSImageSource(config.data.tfds_name, split, data_dir=config.data.tfds_data_dir or None,
                                **_image_shape(config))


def _check_images(data) -> None:
  """The fields of ``config.data`` the image sources read (messages start with the field's name)."""
  for name in ("image_root", "image_groups", "tfds_name", "tfds_data_dir"):
    _checks.check_string(name, _checks.get(data, name, ""))
  background = _checks.check_ints("image_background", _checks.get(data, "image_background", ""), 0, 255)
  if len(background) != 3:
    raise ValueError(f"image_background must be an (r, g, b) colour, got {background!r}.")
  if data.source == "image_folder" and not data.image_root:
    raise ValueError("image_root must name the folder of class folders for source 'image_folder'.")
  if data.source == "tfds_images":
    from shuffle_learn.data import images  # pylint: disable=g-import-not-at-top
    _checks.check_choice("tfds_name", data.tfds_name, tuple(images.TFDS_SPLITS))


def _moving_sprites(config, split: str):
  from shuffle_learn.data import moving_sprites  # pylint: disable=g-import-not-at-top
  sprites = None  # "shapes": the built-in procedural sprites, split by sprite index.
  if config.data.sprites != "shapes":  # The split's own images, with their alpha.
    from shuffle_learn.data import emoji  # pylint: disable=g-import-not-at-top
    from shuffle_learn.data import images  # pylint: disable=g-import-not-at-top
    root, groups = config.data.image_root, config.data.image_groups or None
    if config.data.sprites == "emoji":
      root, groups = emoji.default_root(), "groups.json"
      emoji.build(root)
    sprites = images.ImageFolderSource(root, split, size=tuple(config.data.sprite_size), channels=4,
                                       split_key=groups)
  return moving_sprites.MovingSpritesSource(
      split, num_examples=config.data.num_clips[schema.SPLITS.index(split)],
      num_frames=config.video.num_frames, size=(config.video.height, config.video.width),
      sprite_size=tuple(config.data.sprite_size), sprites=sprites, seed=config.data.clip_seed,
      split_sprites=sprites is None, timing=config.data.timing)


def _ucf101(config, split: str):
  from shuffle_learn.data import video_tfds  # pylint: disable=g-import-not-at-top
  return video_tfds.TFDSVideoSource(split, name="ucf101", data_dir=config.data.tfds_data_dir or None,
                                    num_frames=config.video.num_frames, size=(config.video.height, config.video.width))


def _check_videos(data) -> None:
  """The fields of ``config.data`` the video sources read."""
  for name in ("image_root", "image_groups", "tfds_data_dir"):
    _checks.check_string(name, _checks.get(data, name, ""))
  if data.source == "moving_sprites":
    sprites = _checks.check_choice("sprites", _checks.get(data, "sprites", ""), ("emoji", "shapes", "image_folder"))
    if sprites == "image_folder" and not data.image_root:
      raise ValueError("image_root must name the folder of sprite images for sprites='image_folder'.")
    num_clips = _checks.check_ints("num_clips", _checks.get(data, "num_clips", ""), 1, 10**9)
    if len(num_clips) != 3:
      raise ValueError(f"num_clips must be (train, valid, test) clip counts, got {num_clips!r}.")
    if len(_checks.check_ints("sprite_size", _checks.get(data, "sprite_size", ""), 1, 4096)) != 2:
      raise ValueError(f"sprite_size must be (height, width), got {data.sprite_size!r}.")
    _checks.check_int("clip_seed", _checks.get(data, "clip_seed", ""), 0)
    from shuffle_learn.data import moving_sprites  # pylint: disable=g-import-not-at-top
    _checks.check_choice("timing", _checks.get(data, "timing", ""), tuple(moving_sprites.TIMINGS))


class Source(NamedTuple):
  """A source by config name: the modality it serves, its builder ``(config, split)``, its field check, its labels.

  ``labels`` is ``"notes"`` for NSynth's note labels (pitch, instrument,
  family: `probes.NOTE_TASKS`), ``"classes"`` for one class per example
  (``label``, or a multi-hot ``labels``: `probes.LABEL_TASKS`),
  ``"frames"`` for multi-hot labels per frame (sound events: the frame-level
  probe of `shuffle_learn.audio_suite`), or ``"none"`` for no downstream
  labels (the audio mix: unlabelled pre-training audio).
  """

  modality: str
  build: Callable
  check: Callable
  labels: str = "classes"


SOURCES = {
    "gm_notes": Source("audio", _gm_notes, _check_notes, "notes"),
    "nsynth": Source("audio", _nsynth, _check_notes, "notes"),
    "spoken_words": Source("audio", _spoken_words, _check_spoken_words),
    "sound_events": Source("audio", _sound_events, _check_sound_events, "frames"),
    "audio_mix": Source("audio", _audio_mix, _check_audio_mix, "none"),
    "emoji": Source("image", _emoji, _check_images),
    "image_folder": Source("image", _image_folder, _check_images),
    "tfds_images": Source("image", _tfds_images, _check_images),
    "moving_sprites": Source("video", _moving_sprites, _check_videos),
    "ucf101": Source("video", _ucf101, _check_videos),
}


# The optional packages a source imports, each with the line that installs it (all are in the `tasks`
# extra but tinysoundfont, which installs with --no-deps).
PACKAGES = {
    "gm_notes": (("tinysoundfont", "pip install --no-deps tinysoundfont"),),
    "spoken_words": (("espeakng_loader", "pip install espeakng-loader"), ("soxr", "pip install soxr")),
    "sound_events": (("soundfile", "pip install soundfile"), ("sed_eval", "pip install sed_eval"),
                     ("scaper", "pip install jams pyloudnorm; pip install --no-deps scaper==1.6.5")),
}


def check_packages(config) -> None:
  """Raises ImportError, naming the pip package, if a package the config's source needs is missing.

  For ``audio_mix``, the packages of every source it mixes. Called before a
  long job starts, so that it fails at once rather than after pre-training.
  """
  import importlib.util  # pylint: disable=g-import-not-at-top
  names = tuple(config.data.mix) if config.data.source == "audio_mix" else (config.data.source,)
  for name in names:
    for module, install in PACKAGES.get(name, ()):
      if importlib.util.find_spec(module) is None:
        raise ImportError(f"config.data.source {name!r} needs the Python package {module!r}, which is not "
                          f"installed: {install} (or pip install -e '.[tasks]').")


def make_source(config, split: str):
  """The config's source for ``split`` ("train", "valid" or "test")."""
  return SOURCES[config.data.source].build(config, split)


def class_counts(config, source) -> dict[str, int]:
  """The class counts a downstream probe of the source needs (`probes.evaluate_tasks`'s keyword arguments)."""
  if SOURCES[config.data.source].labels == "notes":
    return {"num_families": source.num_families, "num_instruments": source.num_instruments}
  return {"num_classes": source.num_classes}


def raw_key(config) -> str:
  """The batch field the config's modality reads ("audio", "image" or "video")."""
  return schema.RAW_KEYS[config.pretext.modality]


def train_batches(config, source) -> grain.DatasetIterator:
  """This host's shard of the training batches: shuffled every epoch, forever."""
  return iter(loader.note_batches(
      source, batch_size=config.train.batch_size // jax.process_count(), seed=config.seed,
      num_examples=config.data.train_examples or None, num_threads=config.data.num_threads,
      prefetch_buffer_size=config.data.prefetch, worker_count=config.data.worker_count))


def num_train_examples(config, source) -> int:
  """Examples one training epoch reads (all hosts together)."""
  return min(config.data.train_examples or len(source), len(source))


def eval_batches(config, source) -> list[dict[str, np.ndarray]]:
  """The fixed validation batches (this host's shard, the raw input only), read once and kept in memory."""
  num_examples = min(config.train.eval_examples, len(source))
  num_examples -= num_examples % config.train.batch_size
  if num_examples == 0:
    raise ValueError(
        f"the validation split has {len(source)} examples, fewer than config.train.batch_size="
        f"{config.train.batch_size}.")
  batches = loader.note_batches(
      source, batch_size=config.train.batch_size // jax.process_count(), seed=config.seed, shuffle=False,
      num_epochs=1, num_examples=num_examples, num_threads=config.data.num_threads)
  key = raw_key(config)
  return [{key: b[key]} for b in batches]
