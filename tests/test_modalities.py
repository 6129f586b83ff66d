"""A tiny end-to-end pre-training run per modality through the real trainer: image tiles and frame orders."""

import os

import ml_collections
import numpy as np
import pytest
from PIL import Image

from experiments.configs import tiny
from shuffle_learn import checkpoints
from shuffle_learn import train


def image_folder(root, classes=3, per_class=40, size=24, seed=0):
  """RGBA squares of one colour family per class on a transparent background."""
  rng = np.random.default_rng(seed)
  for c in range(classes):
    os.makedirs(os.path.join(root, f"class{c}"))
    for i in range(per_class):
      image = np.zeros((size, size, 4), np.uint8)
      top, left = rng.integers(0, size // 2, 2)
      image[top:top + size // 2, left:left + size // 2, c] = 255
      image[top:top + size // 2, left:left + size // 2, 3] = 255
      Image.fromarray(image).save(os.path.join(root, f"class{c}", f"{c}-{i}.png"))
  return root


def small_run(config):
  config.train.num_steps = 6
  config.train.eval_every = 6
  config.train.checkpoint_every = 6
  config.train.eval_examples = 8
  return config


def test_jigsaw_pretraining_on_an_image_folder(tmp_path):
  config = small_run(tiny.get_config())
  config.data.source = "image_folder"
  config.data.image_root = image_folder(str(tmp_path / "images"))
  config.data.image_groups = ""
  config.data.image_background = (255, 255, 255)
  config.data.tfds_name = ""
  config.pretext.modality = "image"
  config.pretext.n_rows = config.pretext.n_cols = 3
  config.image = ml_collections.ConfigDict(dict(height=24, width=24, channels=3, gap=2, tile_normalization=True,
                                                color_jitter=0.1, channel_drop=False))
  workdir = str(tmp_path / "run")
  summary = train.train_and_evaluate(config, workdir)
  assert summary["step"] == 6 and summary["chance"] == 1 / 9
  assert 0 <= summary["valid"]["partial_ranks_accuracy"] <= 1 and np.isfinite(summary["valid"]["loss"])
  assert checkpoints.load_checkpoint(workdir)[2] == 6


def test_frame_order_pretraining_on_moving_sprites(tmp_path):
  config = small_run(tiny.get_config())
  config.data.source = "moving_sprites"
  config.data.sprites = "shapes"  # The built-in procedural sprites.
  config.data.image_root = ""
  config.data.image_groups = ""
  config.data.num_clips = (64, 16, 16)
  config.data.sprite_size = (8, 8)
  config.data.clip_seed = 0
  config.data.timing = "linear"
  config.pretext.modality = "video"
  config.video = ml_collections.ConfigDict(dict(num_frames=5, height=16, width=16, channels=3,
                                                normalization="example"))
  summary = train.train_and_evaluate(config, str(tmp_path))
  assert summary["step"] == 6 and summary["chance"] == 1 / 5
  assert 0 <= summary["valid"]["partial_ranks_accuracy"] <= 1 and np.isfinite(summary["valid"]["loss"])


@pytest.mark.parametrize("field,value,message", [
    ("pretext.modality", "audio", "config.pretext.modality must be 'video' for config.data.source='moving_sprites'"),
    ("data.num_clips", (64, 16), "config.data.num_clips must be \\(train, valid, test\\) clip counts"),
    ("video.num_frames", 1, "config.video.num_frames must be an integer >= 2"),
])
def test_bad_video_configs_name_the_field(field, value, message):
  config = tiny.get_config()
  config.data.source = "moving_sprites"
  config.data.image_root = config.data.image_groups = ""
  config.data.sprites = "shapes"
  config.data.num_clips, config.data.sprite_size, config.data.clip_seed = (64, 16, 16), (8, 8), 0
  config.data.timing = "linear"
  config.pretext.modality = "video"
  config.video = ml_collections.ConfigDict(dict(num_frames=5, height=16, width=16, channels=3,
                                                normalization="example"))
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ValueError, match=message):
    train.build(config)
