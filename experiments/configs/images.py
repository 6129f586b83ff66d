"""The image job: the ICLR paper's Table 4 on the emoji image set, on a 2-core CPU.

Command:
  python -m experiments.images --workdir /tmp/images

Pre-trains the CFN of `image_default.py` (3x3 jigsaw of emoji, `small`) with
each of the four objectives, then trains a linear classifier of the 9 emoji
categories on the frozen embedding of N = 1000 and 3000 train images (3 seeds:
the images drawn and the classifier's initialisation), scored on the test
split (emoji never seen in training, with their skin-tone variants), against
the same CFN untrained (`random_embedding`) and trained end to end on the N
labels (`supervised`). Results: docs/results/README.md (Images).
"""

from ml_collections import config_dict

from experiments.configs import image_default
from experiments.configs import nsynth
from shuffle_learn.evaluators import probes


def get_config() -> config_dict.ConfigDict:
  config = nsynth.get_config()
  config.pretrain = image_default.get_config()
  config.methods = ("perturbed_fy", "fast_soft_rank", "mse", "fixed_permutation")
  config.baselines = ("random_embedding", "supervised")
  config.eval.n_train = (1000, 3000)
  config.eval.pool_examples = 4000       # Of the 6,008 train images.
  config.eval.test_examples = 0          # The whole test split (622 images).
  config.eval.embedding = "fc6"          # Every tile's fc6, in tile order (best of conv, fc6, fc7 here).
  config.eval.probe = "linear"           # As the paper probes images.
  config.eval.tasks = probes.LABEL_TASKS
  config.eval.supervised_epochs = 10
  return config
