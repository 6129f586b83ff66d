"""Tests of the main job (`shuffle_learn.job`, `python -m experiments.nsynth`) on the tiny config: schema, files, reuse, bad configs."""

import json
import os

import ml_collections
import pytest

from experiments.configs import nsynth as nsynth_config
from experiments.configs import tiny
from shuffle_learn import job as job_lib
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
  return workdir, job_lib.run(tiny_job_config(), workdir)


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
  assert table.count("| family_accuracy |") == 2 and "N = 16 labelled examples" in table and "N = 32 " in table
  assert os.path.getsize(os.path.join(workdir, "results.png")) > 1000
  assert os.listdir(os.path.join(workdir, "pretrain", "perturbed_fy", "checkpoints")) == ["20"]


def test_second_run_reuses_pretraining_and_embeddings(job):
  workdir, first = job
  config = tiny_job_config()
  config.baselines = ("random_embedding",)
  embeddings = sorted(os.listdir(os.path.join(workdir, "embeddings")))
  second = job_lib.run(config, workdir)
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
    ("eval.probe", "svm", "config.eval.probe must be one of"),
    ("pretrain.train.batch_size", 0, "config.pretrain.train.batch_size must be an integer >= 1"),
])
def test_bad_job_config_fails_at_start(tmp_path, field, value, message):
  values = tiny_job_config().to_dict()
  node = values
  *parents, name = field.split(".")
  for parent in parents:
    node = node[parent]
  node[name] = value
  with pytest.raises(ValueError, match=message):
    job_lib.run(ml_collections.ConfigDict(values), str(tmp_path))
  assert not os.path.exists(os.path.join(tmp_path, "results.json"))


@pytest.mark.parametrize("section,field", [("eval", "seeds"), ("pretrain", "seed")])
def test_a_missing_job_field_is_named_once(tmp_path, section, field):
  config = tiny_job_config()
  del config[section][field]
  with pytest.raises(ValueError, match=f"^config\\.{section}\\.{field} is missing\\.$"):
    job_lib.run(config, str(tmp_path))


def test_sweep_runs_the_job_per_point_and_summarizes(tmp_path):
  config = tiny_job_config()
  config.baselines = ("random_embedding",)
  config.eval.n_train = (16,)
  config.eval.tasks = ("family_accuracy", "pitch_mse")
  config.sweep.fields = ("pretext.n_rows", "pretext.n_cols")
  config.sweep.points = ((2, 1), (1, 2))
  config.sweep.names = ("frequency", "time")
  summary = job_lib.run(config, str(tmp_path))
  assert list(summary["sweep"]) == ["frequency", "time"]
  for name, (rows, cols) in zip(("frequency", "time"), ((2, 1), (1, 2))):
    with open(tmp_path / name / "results.json") as f:
      point = json.load(f)
    assert point == json.loads(json.dumps(summary["sweep"][name]))
    assert (point["config"]["pretrain"]["pretext"]["n_rows"], point["config"]["pretrain"]["pretext"]["n_cols"]) == (
        rows, cols)
    assert set(point["methods"]) == {"perturbed_fy", "random_embedding"}
  # The random CFN of each point has its own number of patches: different embeddings.
  assert (summary["sweep"]["frequency"]["methods"]["random_embedding"]["pitch_mse"]["values"] !=
          summary["sweep"]["time"]["methods"]["random_embedding"]["pitch_mse"]["values"])
  with open(tmp_path / "sweep.json") as f:
    assert json.load(f)["fields"] == ["pretext.n_rows", "pretext.n_cols"]
  table = (tmp_path / "sweep.md").read_text()
  assert "| frequency |" in table and "| time |" in table and "perturbed_fy: pitch_mse" in table
  assert (tmp_path / "sweep.png").stat().st_size > 1000


@pytest.mark.parametrize("sweep,message", [
    ({"fields": ("pretext.bands",), "points": (2,)}, "'pretext.bands' is not a field"),
    ({"fields": ("pretext.n_rows", "pretext.n_cols"), "points": ((2, 1), (3,))}, "every point needs 2 values"),
    ({"fields": ("pretext.n_rows",), "points": (2, 3), "names": ("a", "a")}, "config.sweep.names"),
    ({"fields": ("pretext.n_rows",), "points": (2,), "names": ("a/b",)}, "config.sweep.names"),
    ({"fields": ("pretext.n_rows",), "points": ()}, "config.sweep.points is empty"),
    ({"fields": ("pretext.n_rows",), "points": (2, 0)}, "point '0' gives a bad pre-training config: config.pretrain.pretext"),
])
def test_bad_sweep_fails_at_start(tmp_path, sweep, message):
  config = tiny_job_config().to_dict()
  config["sweep"].update(sweep)
  with pytest.raises(ValueError, match=message):
    job_lib.run(ml_collections.ConfigDict(config), str(tmp_path))
  assert os.listdir(tmp_path) == []


def test_the_shipped_model_is_probed_as_pretrained(job, tmp_path, monkeypatch):
  from shuffle_learn import checkpoints, pretrained  # pylint: disable=g-import-not-at-top
  workdir, results = job
  shipped = str(tmp_path / "shipped")
  checkpoints.export(os.path.join(workdir, "pretrain", "perturbed_fy"), shipped)
  monkeypatch.setattr(pretrained, "DIRECTORY", shipped)
  config = tiny_job_config()
  config.methods, config.baselines = (), ("pretrained",)
  again = job_lib.run(config, str(tmp_path / "job"))
  # The shipped model here is the job's own checkpoint: the same embedding, the same scores.
  assert again["methods"]["pretrained"] == results["methods"]["perturbed_fy"]
  config.pretrain.features.seconds = 0.25
  with pytest.raises(ValueError, match="'pretrained' embeds 0.5 s clips, config.pretrain.features.seconds is 0.25"):
    job_lib.validate(config)
