"""The video job over the number of frames (5, 10, 20): does ordering fewer frames teach less?

Command:
  python -m experiments.video --config experiments/configs/video_frames.py --workdir /tmp/video_frames

The ICLR paper (Section 3.2) finds that with fewer than 20 frames the
downstream accuracy does not rise above chance. Here `video.py` with
`perturbed_fy` against `random_embedding` at every point (the labelled clips
have the same number of frames as the pre-training ones).
"""

from experiments.configs import video


def get_config():
  config = video.get_config()
  config.methods = ("perturbed_fy",)
  config.baselines = ("random_embedding",)
  config.sweep.fields = ("video.num_frames",)
  config.sweep.points = (5, 10, 20)
  config.sweep.names = ("frames5", "frames10", "frames20")
  return config
