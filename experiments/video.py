"""The video job: the order of 20 frames pre-trained with every objective, the frozen embedding probed.

  python -m experiments.video --workdir DIR [--config experiments/configs/video.py] [--config.key=value ...]

The analogue of the ICLR paper's Table 3 on synthetic moving-sprite clips
(`experiments/configs/video.py`; the sweep over the number of frames is
`experiments/configs/video_frames.py`); writes ``DIR/results.{json,md,png}``
(``DIR/sweep.*`` for a sweep), see `shuffle_learn.job`.
"""

from shuffle_learn import job

main = job.main

if __name__ == "__main__":
  from shuffle_learn import cli  # pylint: disable=g-import-not-at-top
  cli.run(main, config="experiments/configs/video.py", validate=job.validate, workdir_help="Job directory.")
