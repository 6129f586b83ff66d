"""The main job (`shuffle_learn.job.run`) on images and videos: label tasks, confusions and config checks."""

import json
import os

import numpy as np
import pytest

from experiments.configs import image_default
from experiments.configs import images as images_config
from experiments.configs import video as video_config
from experiments.configs import video_default
from shuffle_learn import job as job_lib
from shuffle_learn.data import moving_sprites
from shuffle_learn.data import sources
from shuffle_learn.evaluators import probes
from tests.test_modalities import image_folder

METHODS = ("perturbed_fy", "random_embedding", "supervised")


def _shrink(pretrain):
  """A pre-training config run in seconds."""
  pretrain.model.size = "tiny"
  pretrain.train.batch_size = 8
  pretrain.train.num_steps = 4
  pretrain.train.eval_every = 4
  pretrain.train.checkpoint_every = 4
  pretrain.train.eval_examples = 8
  pretrain.train.progress = False
  return pretrain


def _shrink_job(config):
  config.methods = ("perturbed_fy",)
  config.baselines = ("random_embedding", "supervised")
  config.eval.n_train = (8,)
  config.eval.pool_examples = 24
  config.eval.seeds = 2
  config.eval.epochs = 20
  config.eval.supervised_epochs = 1
  return config


def image_job_config(root):
  pretrain = _shrink(image_default.get_config())
  pretrain.data.source = "image_folder"
  pretrain.data.image_root = root
  pretrain.image.height = pretrain.image.width = 24
  pretrain.image.gap = 2
  config = images_config.get_config()
  config.pretrain = pretrain
  return _shrink_job(config)


def video_job_config():
  pretrain = _shrink(video_default.get_config())
  pretrain.data.sprites = "shapes"
  pretrain.data.num_clips = (48, 16, 24)
  pretrain.data.sprite_size = (8, 8)
  pretrain.video.num_frames = 5
  pretrain.video.height = pretrain.video.width = 16
  config = video_config.get_config()
  config.pretrain = pretrain
  return _shrink_job(config)


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
  return image_folder(str(tmp_path_factory.mktemp("images") / "folder"))


@pytest.fixture(scope="module")
def image_job(tmp_path_factory, image_root):
  config = image_job_config(image_root)
  workdir = str(tmp_path_factory.mktemp("image_job"))
  return config, workdir, job_lib.run(config, workdir)


@pytest.fixture(scope="module")
def video_job(tmp_path_factory):
  config = video_job_config()
  workdir = str(tmp_path_factory.mktemp("video_job"))
  return config, workdir, job_lib.run(config, workdir)


def _check_results(config, workdir, results, class_names):
  with open(os.path.join(workdir, "results.json")) as f:
    saved = json.load(f)
  assert saved == json.loads(json.dumps(results))
  assert tuple(saved["config"]["eval"]["tasks"]) == probes.LABEL_TASKS
  assert set(saved["methods"]) == set(METHODS)
  for method, tasks in saved["methods"].items():
    assert tuple(tasks) == probes.LABEL_TASKS, method
    for summary in tasks.values():
      assert len(summary["values"]) == 2 and all(0 <= v <= 1 for v in summary["values"])
      assert summary["mean"] == pytest.approx(np.mean(summary["values"]))
      assert summary["std"] == pytest.approx(np.std(summary["values"]))
  assert saved["n_train"] == 8 and "by_n_train" not in saved
  assert 0 <= saved["pretext"]["perturbed_fy"]["partial_ranks_accuracy"] <= 1
  assert saved["class_names"] == list(class_names)
  test_source = sources.make_source(job_lib.downstream_config(config), "test")  # The whole split: test_examples 0.
  test_size, k = len(test_source), len(class_names)
  counts = np.bincount([int(example["label"]) for example in test_source], minlength=k)
  assert set(saved["confusion"]) == {"perturbed_fy", "random_embedding"}  # The probed embeddings.
  for method, confusion in saved["confusion"].items():
    confusion = np.asarray(confusion)
    assert confusion.shape == (k, k) and confusion.dtype.kind == "i"
    assert confusion.sum() == 2 * test_size
    # Summed over the 2 seeds, which see the same test examples: each row is twice a class's test count.
    np.testing.assert_array_equal(confusion.sum(axis=1), 2 * counts)
    accuracy = np.trace(confusion) / confusion.sum()  # The two seeds' accuracies, pooled.
    assert accuracy == pytest.approx(saved["methods"][method]["accuracy"]["mean"])
  return saved


def test_image_job_results(image_job, image_root):
  config, workdir, results = image_job
  saved = _check_results(config, workdir, results, ("class0", "class1", "class2"))
  assert saved["config"]["pretrain"]["data"]["image_root"] == image_root
  table = open(os.path.join(workdir, "results.md")).read()
  for task in probes.LABEL_TASKS:
    assert f"| {task} |" in table
  assert "Per-class recall at N = 8" in table and "| class0 |" in table and "| class2 |" in table
  assert "Direction accuracy" not in table
  assert os.path.getsize(os.path.join(workdir, "results.png")) > 1000


def test_video_job_results(video_job):
  config, workdir, results = video_job
  saved = _check_results(config, workdir, results, moving_sprites.CLASS_NAMES)
  assert saved["config"]["pretrain"]["data"]["timing"] == video_default.get_config().data.timing
  assert saved["config"]["eval"]["data"] == {"timing": "linear"}
  table = open(os.path.join(workdir, "results.md")).read()
  assert "Per-class recall at N = 8" in table and "| rotating clockwise |" in table
  assert "Direction accuracy per time-reversed pair" in table
  assert "| moving left to right / moving right to left |" in table and "| covering / uncovering |" in table
  assert os.listdir(os.path.join(workdir, "pretrain", "perturbed_fy", "checkpoints")) == ["4"]


def test_tasks_of_each_source():
  assert job_lib.tasks_of("gm_notes") == job_lib.tasks_of("nsynth") == probes.NOTE_TASKS
  for source in ("spoken_words", "emoji", "image_folder", "tfds_images", "moving_sprites", "ucf101"):
    assert job_lib.tasks_of(source) == probes.LABEL_TASKS


def test_downstream_config_applies_eval_data():
  config = video_job_config()
  config.pretrain.data.timing = "decelerating"
  labelled = job_lib.downstream_config(config)
  assert labelled.data.timing == "linear" and config.pretrain.data.timing == "decelerating"  # A copy.
  assert labelled.data.num_clips == config.pretrain.data.num_clips
  source = sources.make_source(labelled, "train")
  assert source.timing == "linear" and sources.class_counts(labelled, source) == {"num_classes": 12}
  assert sources.make_source(config.pretrain, "train").timing == "decelerating"
  config.eval.data.sprite_size = (6, 6)
  assert tuple(job_lib.downstream_config(config).data.sprite_size) == (6, 6)
  config.eval.data.speed = 2.0
  with pytest.raises(ValueError, match=r"config\.eval\.data\.speed"):
    job_lib.downstream_config(config)
  with pytest.raises(ValueError, match=r"config\.eval\.data\.speed"):
    job_lib.validate(config)


def test_validate_accepts_the_shrunk_configs(image_root):
  job_lib.validate(image_job_config(image_root))
  job_lib.validate(video_job_config())


def test_validate_rejects_logmel_baseline_for_images(image_root):
  config = image_job_config(image_root)
  config.baselines = ("random_embedding", "logmel_baseline")
  with pytest.raises(ValueError, match=r"^config\.baselines must be one of.*'logmel_baseline'"):
    job_lib.validate(config)


@pytest.mark.parametrize("tasks", [("family_accuracy",), ("accuracy", "pitch_mse")])
def test_validate_rejects_note_tasks_for_video(tasks):
  config = video_job_config()
  config.eval.tasks = tasks
  with pytest.raises(ValueError, match=r"^config\.eval\.tasks must be a non-empty subset of .* for source 'moving_sprites'"):
    job_lib.validate(config)


@pytest.mark.parametrize("field,value,message", [
    ("pretrain.data.timing", "sudden", r"config\.pretrain\.data\.timing must be one of"),
    ("eval.data.timing", "sudden", r"config\.pretrain \(with config\.eval\.data\)\.data\.timing must be one of"),
    ("pretrain.data.sprites", "photos", r"config\.pretrain\.data\.sprites must be one of"),
])
def test_validate_names_a_bad_video_data_field(field, value, message):
  config = video_job_config()
  *path, name = field.split(".")
  node = config
  for key in path:
    node = node[key]
  node[name] = value
  with pytest.raises(ValueError, match=message):
    job_lib.validate(config)
