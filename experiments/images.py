"""The image job: the 3x3 jigsaw pre-trained with every objective, the frozen embedding probed linearly.

  python -m experiments.images --workdir DIR [--config experiments/configs/images.py] [--config.key=value ...]

The analogue of the ICLR paper's Table 4 on the emoji image set
(`experiments/configs/images.py`); writes ``DIR/results.{json,md,png}``, see
`shuffle_learn.job`.
"""

from shuffle_learn import job

main = job.main

if __name__ == "__main__":
  from shuffle_learn import cli  # pylint: disable=g-import-not-at-top
  cli.run(main, config="experiments/configs/images.py", validate=job.validate, workdir_help="Job directory.")
