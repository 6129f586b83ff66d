"""The main job on notes: pre-train the CFN on a permutation pretext task, probe the frozen embedding.

  python -m experiments.nsynth --workdir DIR [--config experiments/configs/nsynth.py] [--config.key=value ...]

Pre-trains every method of ``config.methods``, probes it beside the baselines
and writes ``DIR/results.{json,md,png}`` (``DIR/sweep.*`` for a sweep); see
`shuffle_learn.job`. A notebook calls `main` (or `shuffle_learn.job.run`) the
same way.
"""

from shuffle_learn import job

main = job.main

if __name__ == "__main__":
  from shuffle_learn import cli  # pylint: disable=g-import-not-at-top
  cli.run(main, config="experiments/configs/nsynth.py", validate=job.validate, workdir_help="Job directory.")
