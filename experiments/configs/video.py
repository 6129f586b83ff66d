"""The video job: the ICLR paper's Table 3 on synthetic moving-sprite clips, on a 2-core CPU.

Command:
  python -m experiments.video --workdir /tmp/video

Pre-trains the CFN of `video_default.py` (20 frames of 32x32, `small`) with
each of the four objectives on unlabelled clips in which time runs one way
(``data.timing="forward"``, `moving_sprites.TIMINGS`), then trains the
paper's 3-layer MLP on the frozen fc6 features of the 20 frames, in order, of
N = 1000 labelled clips (``eval.data.timing="linear"``: 12 classes in pairs
that only frame order tells apart; 3 seeds), scored on test clips of emoji
never seen in training, against the same CFN untrained (`random_embedding`)
and trained end to end on the N labels (`supervised`). Results:
docs/results/README.md (Video); the number of frames: `video_frames.py`;
the pre-training clips' arrow of time: `video_timing.py`.
"""

from ml_collections import config_dict

from experiments.configs import nsynth
from experiments.configs import video_default
from shuffle_learn.evaluators import probes


def get_config() -> config_dict.ConfigDict:
  config = nsynth.get_config()
  config.pretrain = video_default.get_config()
  config.methods = ("perturbed_fy", "fast_soft_rank", "mse", "fixed_permutation")
  config.baselines = ("random_embedding", "supervised")
  config.eval.n_train = (1000,)
  config.eval.pool_examples = 3000
  config.eval.test_examples = 0          # The whole test split.
  config.eval.embedding = "fc6"          # Every frame's fc6, in frame order.
  config.eval.probe = "mlp"
  config.eval.tasks = probes.LABEL_TASKS
  config.eval.supervised_epochs = 10
  config.eval.data = config_dict.ConfigDict({"timing": "linear"})  # Labelled clips: order alone tells a pair.
  return config
