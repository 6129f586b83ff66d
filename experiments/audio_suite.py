"""The audio suite: permutation pretexts against the contrastive peers on pitch, spoken words and sound events.

  python -m experiments.audio_suite --workdir DIR [--config experiments/configs/audio_suite.py] [--config.key=value ...]

Pre-trains every method of ``config.methods`` on the same clips, probes every
checkpoint and baseline on the three tasks and writes
``DIR/results.{json,md,png}``; see `shuffle_learn.audio_suite`.
"""

from shuffle_learn import audio_suite

main = audio_suite.main

if __name__ == "__main__":
  from shuffle_learn import cli  # pylint: disable=g-import-not-at-top
  cli.run(main, config="experiments/configs/audio_suite.py", validate=audio_suite.validate,
          workdir_help="Suite directory.")
