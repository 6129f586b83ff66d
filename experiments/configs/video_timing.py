"""The video job over the pre-training clips' arrow of time: can frame order be learnt from clips as likely reversed?

Command:
  python -m experiments.video --config experiments/configs/video_timing.py --workdir /tmp/video_timing

`video.py` with `perturbed_fy` against `random_embedding`, pre-trained on
clips of each `moving_sprites.TIMINGS` in turn: ``linear`` (a clip and its
reverse equally likely, as the labelled clips), ``decelerating`` (every
motion slows down) and ``forward`` (time runs one way, the default). The
labelled clips are ``linear`` at every point.
"""

from experiments.configs import video


def get_config():
  config = video.get_config()
  config.methods = ("perturbed_fy",)
  config.baselines = ("random_embedding",)
  config.sweep.fields = ("data.timing",)
  config.sweep.points = ("linear", "decelerating", "forward")
  config.sweep.names = ("linear", "decelerating", "forward")
  return config
