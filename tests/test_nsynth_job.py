"""Tests of the main job `experiments.nsynth` on the tiny config: schema, files, reuse, bad configs."""

import json
import os

import ml_collections
import pytest

from experiments import nsynth
from experiments.configs import nsynth as nsynth_config
from experiments.configs import tiny
from shuffle_learn.evaluators import probes


def tiny_job_config():
  config = nsynth_config.get_config()
  config.pretrain = tiny.get_config()
  config.pretrain.train.num_steps = 20
  config.pretrain.train.eval_every = 20
  config.methods = ("perturbed_fy",)
  config.baselines = ("random_embedding", "logmel_baseline", "supervised")
  config.eval.n_train = (16, 32)
  config.eval.pool_examples = 48
  config.eval.test_examples = 24
  config.eval.seeds = 2
  config.eval.epochs = 50
  config.eval.supervised_epochs = 1
  return config


@pytest.fixture(scope="module")
def job(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("job"))
  return workdir, nsynth.run(tiny_job_config(), workdir)


def test_results_follow_the_schema(job):
  workdir, results = job
  with open(os.path.join(workdir, "results.json")) as f:
    saved = json.load(f)
  assert saved == json.loads(json.dumps(results))
  assert set(saved["methods"]) == {"perturbed_fy", "random_embedding", "logmel_baseline", "supervised"}
  for method, tasks in saved["methods"].items():
    assert set(tasks) == set(probes.TASKS), method
    for task, summary in tasks.items():
      assert len(summary["values"]) == 2
      assert summary["mean"] == pytest.approx(sum(summary["values"]) / 2)
      if task != "pitch_mse":
        assert all(0 <= v <= 1 for v in summary["values"])
  assert 0 <= saved["pretext"]["perturbed_fy"]["partial_ranks_accuracy"] <= 1
  assert saved["runtime_s"] > 0 and saved["config"]["eval"]["seeds"] == 2
  assert set(saved["by_n_train"]) == {"16", "32"} and saved["methods"] == saved["by_n_train"]["16"]


def test_job_writes_table_plot_and_a_reusable_checkpoint(job):
  workdir, _ = job
  table = open(os.path.join(workdir, "results.md")).read()
  assert "| family_accuracy |" in table and "perturbed_fy" in table and "logmel_baseline" in table
  assert os.path.getsize(os.path.join(workdir, "results.png")) > 1000
  assert os.listdir(os.path.join(workdir, "pretrain", "perturbed_fy", "checkpoints")) == ["20"]


def test_second_run_reuses_pretraining_and_embeddings(job):
  workdir, first = job
  config = tiny_job_config()
  config.baselines = ("random_embedding",)
  embeddings = sorted(os.listdir(os.path.join(workdir, "embeddings")))
  second = nsynth.run(config, workdir)
  assert sorted(os.listdir(os.path.join(workdir, "embeddings"))) == embeddings  # Nothing new computed.
  for method in ("perturbed_fy", "random_embedding"):
    assert second["methods"][method] == first["methods"][method]


@pytest.mark.parametrize("field,value,message", [
    ("methods", ("ranknet",), "config.methods"),
    ("baselines", ("oracle",), "config.baselines"),
    ("eval.n_train", (), "config.eval.n_train"),
    ("eval.n_train", (100,), "config.eval.pool_examples"),
    ("eval.seeds", 0, "config.eval.seeds"),
    ("eval.tasks", ("speaker_id",), "config.eval.tasks"),
    ("eval.probe", "svm", "config.eval: kind must be one of"),
    ("pretrain.train.batch_size", 0, "config.train.batch_size"),
])
def test_bad_job_config_fails_at_start(tmp_path, field, value, message):
  values = tiny_job_config().to_dict()
  node = values
  *parents, name = field.split(".")
  for parent in parents:
    node = node[parent]
  node[name] = value
  with pytest.raises(ValueError, match=message):
    nsynth.run(ml_collections.ConfigDict(values), str(tmp_path))
  assert not os.path.exists(os.path.join(tmp_path, "results.json"))
