"""The command-line convention: config files, ``--config.x=y`` overrides, one-line errors."""

import os
import subprocess
import sys

import pytest

from experiments.configs import nsynth as nsynth_config
from shuffle_learn import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_misspelt_override_names_the_fields_that_exist():
  config = nsynth_config.get_config()
  message = cli.unknown_override(config, ["--workdir", "x", "--config.data.soundfonts=FluidR3_GM"])
  assert "--config.data.soundfonts" in message and "--config.pretrain.data.soundfonts" in message
  assert "baselines, eval, methods, pretrain, sweep" in message
  message = cli.unknown_override(config, ["--config.eval.seedz", "3"])
  assert "did you mean --config.eval.seeds" in message and "n_train" in message
  assert cli.unknown_override(config, ["--config.eval.seeds=3", "--config.pretrain.train.batch_size", "8"]) is None


@pytest.mark.parametrize("module,args,expected", [
    ("experiments.nsynth", ["--config.data.soundfonts=TimGM6mb"], "did you mean --config.pretrain.data.soundfonts"),
    ("experiments.nsynth", ["--config.pretrain.train.batch_size=0"],
     "config.pretrain.train.batch_size must be an integer >= 1, got 0."),
    ("shuffle_learn.train", ["--config.pretext.sigma=-1"], "config.pretext.sigma must be a finite number > 0"),
    ("shuffle_learn.train", ["--config.train.bach_size=8"], "did you mean --config.train.batch_size"),
    ("experiments.audio_suite", ["--config.eval.words.n_train=1"],
     "config.eval.words.n_train must be an integer >= 2, got 1."),
])
def test_entry_points_end_bad_configs_with_one_line(tmp_path, module, args, expected):
  result = subprocess.run([sys.executable, "-m", module, "--workdir", str(tmp_path / "w")] + args, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
  assert not os.path.exists(tmp_path / "w")  # Nothing ran.


def test_a_missing_package_ends_the_suite_with_one_line_before_anything_runs(tmp_path):
  # As if a package spoken_words needs were not installed.
  code = ("import runpy, sys; from shuffle_learn.data import sources; "
          "sources.PACKAGES['spoken_words'] += (('no_such_module_xyz', 'pip install xyz'),); "
          f"sys.argv = ['audio_suite', '--workdir', {str(tmp_path / 'w')!r}]; "
          "runpy.run_module('experiments.audio_suite', run_name='__main__')")
  result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert lines == ["error: config.data.source 'spoken_words' needs the Python package 'no_such_module_xyz', which "
                   "is not installed: pip install xyz (or pip install -e '.[tasks]')."], result.stderr
  assert not os.path.exists(tmp_path / "w")


def test_no_module_touches_absl_flags_on_import():
  code = ("import absl.flags, shuffle_learn.train, shuffle_learn.job, shuffle_learn.embed, experiments.nsynth; "
          "import shuffle_learn.data.loader; print(absl.flags.FLAGS.is_parsed())")
  result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=True)
  assert result.stdout.strip() == "False"
