"""Video pre-training config: the order of 20 frames of moving-sprite clips, sized for a 2-core CPU.

Command:
  python -m shuffle_learn.train --config experiments/configs/video_default.py --workdir /tmp/frames

Synthetic clips (`shuffle_learn.data.moving_sprites`): emoji sprites moved
over smooth backgrounds, 20 frames of 32x32, in which time runs one way
(``data.timing="forward"``: sprites move right and up, approach, turn
clockwise, appear, cover). Every frame is a patch of the `small` CFN;
perturbed Fenchel-Young ranks all 20 of them. Clips whose reverse is as
likely (``"linear"``, the labelled clips of the video job) leave a frame-order
pretext nothing to learn: docs/results/README.md (Video). The paper's settings are in
`video_paper.py`; the main video job is `experiments/configs/video.py`.
"""

from ml_collections import config_dict

from experiments.configs import default


def get_config() -> config_dict.ConfigDict:
  config = default.get_config()
  del config.features  # Audio only.
  config.data = config_dict.ConfigDict()
  config.data.source = "moving_sprites"    # "moving_sprites" or "ucf101" (TFDS).
  config.data.sprites = "emoji"            # moving_sprites: "emoji", "shapes" (built in) or "image_folder".
  config.data.image_root = ""              # sprites="image_folder": root/<class>/<image>.
  config.data.image_groups = ""            # sprites="image_folder": a JSON {file stem: group}.
  config.data.num_clips = (8000, 512, 1024)  # moving_sprites: train, valid, test clips.
  config.data.sprite_size = (16, 16)
  config.data.clip_seed = 0
  config.data.timing = "forward"           # moving_sprites: "forward" (time runs one way), "linear", "decelerating".
  config.data.tfds_data_dir = ""           # ucf101: TFDS data_dir.
  config.data.train_examples = 0
  config.data.num_threads = 1
  config.data.worker_count = 0
  config.data.prefetch = 4

  config.video = config_dict.ConfigDict()
  config.video.num_frames = 20
  config.video.height = 32
  config.video.width = 32
  config.video.channels = 3
  config.video.normalization = "example"

  config.pretext.modality = "video"
  del config.pretext.n_rows, config.pretext.n_cols  # A patch per frame.
  config.model.size = "small"
  config.model.normalize_patches = False
  config.train.learning_rate = 1e-3
  config.train.num_steps = 1500
  config.train.eval_every = 500
  config.train.eval_examples = 512
  return config
