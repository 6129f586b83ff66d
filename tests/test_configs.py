"""Every config file of experiments/configs passes its checks: pre-training, job and audio-suite configs."""

import importlib
import pathlib

import pytest

from shuffle_learn import audio_suite
from shuffle_learn import config as config_lib
from shuffle_learn import job

CONFIGS = sorted(p.stem for p in pathlib.Path(__file__).parent.parent.joinpath("experiments", "configs").glob("*.py")
                 if p.stem != "__init__")


@pytest.mark.parametrize("name", CONFIGS)
def test_config_file_validates(name):
  config = importlib.import_module(f"experiments.configs.{name}").get_config()
  if name.startswith("audio_suite"):  # Every method's config and every task's data.
    audio_suite.validate(config)
  elif "pretrain" in config:  # A job config: every sweep point and the labelled examples' data too.
    job.validate(config)
  else:
    config_lib.validate(config)

