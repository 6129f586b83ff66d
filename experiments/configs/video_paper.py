"""The ICLR paper's video pre-training settings (Section 3.2): the order of 20 frames.

Command (accelerator work, not a CPU job):
  python -m shuffle_learn.train --config experiments/configs/video_paper.py --workdir /tmp/frames_paper

20 frames sampled uniformly along each clip, each a patch of the
AlexNet-sized CFN, perturbed Fenchel-Young (sigma 0.1, 10 perturbations),
Adam at 1e-6, batch 32, 1000 epochs of the train split (the audio
experiment's run length; the paper gives none for video), 128x128 frames.
The paper pre-trains on something-something, which TFDS does not have;
this config reads TFDS's ``ucf101`` (``data.source="ucf101"``); set
``data.source="moving_sprites"`` for the synthetic clips.
"""

from experiments.configs import paper
from experiments.configs import video_default


def get_config():
  config = video_default.get_config()
  config.data.source = "ucf101"
  config.video.num_frames = 20
  config.video.height = 128
  config.video.width = 128
  return paper.paper_training(config)
