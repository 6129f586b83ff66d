"""Image pre-training config: the 3x3 jigsaw on the emoji image set, sized for a 2-core CPU.

Command:
  python -m shuffle_learn.train --config experiments/configs/image_default.py --workdir /tmp/jigsaw

The npm emoji set (`shuffle_learn.data.emoji`: Google's and Twitter's emoji,
64x64, 9 categories, split by base emoji; built on first use with npm), cut
into a 3x3 grid of 17x17 tiles (a 4-pixel gap, a random crop inside each cell,
per-tile normalisation, colour jitter), the `small` CFN, perturbed
Fenchel-Young. The paper's settings are in `image_paper.py`; the main image
job is `experiments/configs/images.py`.
"""

from ml_collections import config_dict

from experiments.configs import default


def get_config() -> config_dict.ConfigDict:
  config = default.get_config()
  del config.features  # Audio only.
  config.data = config_dict.ConfigDict()
  config.data.source = "emoji"             # "emoji", "image_folder" or "tfds_images" (`data.sources`).
  config.data.image_root = ""              # image_folder: root/<class>/<image>; emoji: "" for the default cache.
  config.data.image_groups = ""            # image_folder: a JSON {file stem: group} keeping groups in one split.
  config.data.image_background = (255, 255, 255)  # Colour under transparent pixels.
  config.data.tfds_name = "imagenet2012"   # tfds_images: imagenet2012, voc/2012 or cifar10.
  config.data.tfds_data_dir = ""           # tfds_images: TFDS data_dir; "" for TFDS's default.
  config.data.train_examples = 0
  config.data.num_threads = 1
  config.data.worker_count = 0
  config.data.prefetch = 4

  config.image = config_dict.ConfigDict()
  config.image.height = 64
  config.image.width = 64
  config.image.channels = 3
  config.image.gap = 4                     # Tiles are 4 pixels smaller than their 21x21 cells.
  config.image.tile_normalization = True
  config.image.color_jitter = 0.1          # Random shift per tile and channel (0: off).
  config.image.channel_drop = False

  config.pretext.modality = "image"
  config.pretext.n_rows = 3
  config.pretext.n_cols = 3
  config.model.size = "small"
  config.model.normalize_patches = False   # Tiles are normalised by the input (image.tile_normalization).
  config.train.learning_rate = 3e-4
  config.train.num_steps = 6000
  config.train.eval_every = 1000
  config.train.checkpoint_every = 1000
  config.train.eval_examples = 512
  return config
