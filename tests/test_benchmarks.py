"""The benchmarks follow the command-line convention, and only the training benchmark imports the trainer."""

import json
import os
import subprocess
import sys

import pytest

from shuffle_learn import cli
from shuffle_learn import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = ("ranking", "ranking_paths", "frontend", "gm_notes", "data_pipeline", "training")
# A misspelt override of each config, and the field it should suggest.
MISSPELT = {
    "ranking": ("--config.rep=5", "--config.reps"),
    "ranking_paths": ("--config.min_second=1", "--config.min_seconds"),
    "frontend": ("--config.rep=5", "--config.reps"),
    "gm_notes": ("--config.materialize=0", "--config.materialise"),
    "data_pipeline": ("--config.batchs=5", "--config.batches"),
    "training": ("--config.pretext.loss=mse", "--config.pretrain.pretext.loss"),
    "training_paper": ("--config.pretrain.model.sise=small", "--config.pretrain.model.size"),
}


def _config_path(name: str) -> str:
  return os.path.join(ROOT, "benchmarks", "configs", f"{name}.py")


@pytest.mark.parametrize("name", sorted(MISSPELT))
def test_config_loads_and_catches_a_misspelt_override(name):
  config = cli.load_config(_config_path(name))
  assert cli.unknown_override(config, [f"--config.{field}=1" for field in config]) is None
  argument, suggestion = MISSPELT[name]
  message = cli.unknown_override(config, ["--workdir", "x", argument])
  assert message is not None and f"did you mean {suggestion}" in message, message


@pytest.mark.parametrize("name", ["training", "training_paper"])
def test_training_configs_hold_a_valid_training_config(name):
  config = cli.load_config(_config_path(name))
  config_lib.validate(config.pretrain, "config.pretrain")
  assert config.pretrain.to_dict() == cli.load_config(os.path.join(ROOT, config.pretrain_config)).to_dict()


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_uses_the_one_command_line(name):
  with open(os.path.join(ROOT, "benchmarks", f"{name}.py")) as f:
    source = f.read()
  assert "argparse" not in source
  assert "def main(config, workdir: str) -> dict:" in source
  assert f'cli.run(main, config="benchmarks/configs/{name}.py"' in source


def test_only_the_training_benchmark_imports_the_trainer():
  code = ("import importlib, sys\n"
          "for name in ('ranking', 'ranking_paths', 'frontend', 'gm_notes', 'data_pipeline'):\n"
          "  importlib.import_module('benchmarks.' + name)\n"
          "  if 'shuffle_learn.train' in sys.modules:\n"
          "    print(name)\n"
          "    break\n"
          "else:\n"
          "  print('none')\n")
  result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=True)
  assert result.stdout.strip() == "none", f"benchmarks.{result.stdout.strip()} imports shuffle_learn.train"


def test_ranking_benchmark_runs_from_the_command_line(tmp_path):
  workdir = tmp_path / "ranking"
  result = subprocess.run(
      [sys.executable, "-m", "benchmarks.ranking", "--workdir", str(workdir), "--config.reps=1",
       "--config.min_seconds=0", "--config.sizes=((4, 8),)"], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads((workdir / "ranking.json").read_text())
  assert [(r["batch"], r["n"]) for r in report["results"]] == [(4, 8)] and report["reps"] == 1
  assert "| soft_rank l2 fwd+bwd |" in (workdir / "ranking.md").read_text()


def test_ranking_paths_benchmark_runs_from_the_command_line(tmp_path):
  workdir = tmp_path / "paths"
  result = subprocess.run(
      [sys.executable, "-m", "benchmarks.ranking_paths", "--workdir", str(workdir), "--config.min_seconds=0",
       "--config.path_sizes=((4, 8),)", "--config.sort_sizes=((4, 8),)", "--config.pav_sizes=((4, 8),)"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads((workdir / "ranking_paths.json").read_text())
  assert set(report["paths"][0]["ms"]) == {f"{r} {p}" for r in ("l2", "kl") for p in ("dense", "cpu", "accelerator",
                                                                                       "chosen")}
  assert set(report["sorts"][0]["ms"]) == {"xla sort", "counting"}
  assert set(report["pav"][0]["ms"]) == {f"{r} {p}" for r in ("l2", "kl") for p in ("cpu", "accelerator")}
