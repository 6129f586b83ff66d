"""The ICLR paper's image pre-training settings (Section 3.3): the 3x3 jigsaw on ImageNet.

Command (with ImageNet prepared for TFDS; accelerator work, not a CPU job):
  python -m shuffle_learn.train --config experiments/configs/image_paper.py --workdir /tmp/jigsaw_paper

128x128 images cut into 3x3 tiles, the AlexNet-sized CFN, Adam at 1e-6,
batch 32, perturbed Fenchel-Young. The paper gives no run length for images;
we keep the audio experiment's 1000 epochs of the train split (`paper.py`),
an upper bound that ``--config.train.num_epochs`` shortens. Probe on VOC 2012
(multi-label, mean AUC) with `experiments/configs/images.py` and
``--config.pretrain.data.tfds_name=voc/2012 --config.eval.tasks=mean_auc``.
The anti-shortcut options stay those of `image_default.py` (the paper does
not list its own).
"""

from experiments.configs import image_default
from experiments.configs import paper


def get_config():
  config = image_default.get_config()
  config.data.source = "tfds_images"
  config.data.tfds_name = "imagenet2012"
  config.image.height = 128
  config.image.width = 128
  config.image.gap = 8                     # Tiles of 34x34 in cells of 42x42, the default's proportion.
  return paper.paper_training(config)
