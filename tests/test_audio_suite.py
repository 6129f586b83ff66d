"""The audio suite end to end on tiny settings (`shuffle_learn.audio_suite`), and its config checks."""

import json
import math
import os

import numpy as np
import pytest
from ml_collections import config_dict

from experiments.configs import audio_suite as suite_config
from experiments.configs import tiny
from shuffle_learn import audio_suite


def tiny_suite():
  """Two methods and an ablation variant on the tiny notes; every task on a few examples."""
  config = suite_config.get_config()
  pretrain = tiny.get_config()
  for section in ("data", "pretext"):  # The suite's extra fields (mix, sound_events, the peers').
    for name, value in config.pretrain[section].items():
      if name not in pretrain[section]:
        pretrain[section][name] = value
  pretrain.pretext.segment_frames = 32
  pretrain.train.num_steps = 10
  pretrain.train.eval_every = 10
  config.pretrain = pretrain
  config.methods = ("perturbed_fy", "cola", "clip_pitch")
  config.variants = config_dict.ConfigDict({"clip_pitch": {"pretext": {"loss": "multi_sampling", "alpha": 0.0}}})
  config.eval.seeds = 2
  config.eval.epochs = 30
  config.eval.pitch.seconds = 0.5
  config.eval.pitch.n_train, config.eval.pitch.pool_examples, config.eval.pitch.test_examples = 40, 60, 40
  config.eval.words.seconds = 0.5
  config.eval.words.n_train, config.eval.words.pool_examples, config.eval.words.test_examples = 40, 60, 40
  config.eval.events.seconds = 1.0
  config.eval.events.data.num_clips = (10, 2, 6)
  config.eval.events.n_train, config.eval.events.pool_examples, config.eval.events.test_examples = 8, 10, 6
  return config


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("suite"))
  return workdir, audio_suite.run(tiny_suite(), workdir)


def test_every_row_probe_and_metric_is_scored(suite_run):
  workdir, results = suite_run
  rows = ["perturbed_fy", "cola", "clip_pitch", "random_embedding", "random_sampling_net", "logmel_baseline"]
  assert list(results["methods"]) == rows
  columns = [f"{task}: {metric}" for task, (_, metrics) in audio_suite.TASKS.items() for metric in metrics]
  for row in rows:
    assert list(results["methods"][row]) == ["linear", "mlp"]
    for probe in ("linear", "mlp"):
      assert list(results["methods"][row][probe]) == columns
      for value in results["methods"][row][probe].values():
        assert len(value["values"]) == 2 and all(0.0 <= v <= 1.0 for v in value["values"])
        assert math.isclose(value["mean"], np.mean(value["values"]))
  # The embeddings carry the labels: log-mel statistics tell the 3 families and the 10 words above chance.
  assert results["methods"]["logmel_baseline"]["mlp"]["pitch: family_accuracy"]["mean"] > 0.6
  assert results["methods"]["logmel_baseline"]["mlp"]["words: accuracy"]["mean"] > 0.2
  with open(os.path.join(workdir, "results.json")) as f:
    assert json.load(f)["methods"] == results["methods"]
  assert os.path.getsize(os.path.join(workdir, "results.png")) > 10_000


def test_rows_state_their_encoder_and_budget(suite_run):
  _, results = suite_run
  rows = results["rows"]
  assert rows["perturbed_fy"]["kind"] == "permutation" and rows["perturbed_fy"]["encoder"] == "CFN tiny, 4x1 patches"
  assert rows["cola"]["kind"] == rows["clip_pitch"]["kind"] == "contrastive"
  assert rows["clip_pitch"]["loss"] == "multi_sampling" and rows["cola"]["encoder"] == "tiny on whole clips"
  for name in ("perturbed_fy", "cola", "clip_pitch"):
    assert rows[name]["steps"] == 10 and rows[name]["examples_seen"] == 80
    assert rows[name]["train_seconds"] > 0 and rows[name]["parameters"] > 1000
    assert rows[name]["pretext"]["value"] == rows[name]["pretext"]["value"]  # Not NaN.
  assert rows["cola"]["pretext"] == {**rows["cola"]["pretext"], "metric": "clip_accuracy", "chance": 1 / 8}
  assert rows["random_embedding"]["steps"] == 0 and rows["logmel_baseline"]["parameters"] == 0
  assert rows["random_sampling_net"]["encoder"] == "tiny on whole clips, untrained"
  assert rows["random_sampling_net"]["parameters"] == rows["cola"]["parameters"]
  # Clip embeddings: 4 bands x (mean, max) x 16 channels; h of 512; 32 bands' mean and std.
  assert rows["perturbed_fy"]["dims"] == {"pitch": 128, "words": 128, "events": 64}
  assert rows["cola"]["dims"] == {"pitch": 512, "words": 512, "events": 512}
  assert rows["logmel_baseline"]["dims"] == {"pitch": 64, "words": 64, "events": 64}  # Events: mean, std per window.


def test_markdown_has_a_table_per_probe_the_budget_and_the_paper(suite_run):
  workdir, results = suite_run
  with open(os.path.join(workdir, "results.md")) as f:
    text = f.read()
  assert "Linear probe (the peer paper's protocol):" in text and "3-layer MLP probe" in text
  assert "| L_clip + L_frame + L_pitch (multi_sampling) | 0.572 | 0.278 | 0.452 | 0.487 |" in text
  assert "| cola | contrastive | tiny on whole clips |" in text
  header = next(line for line in text.splitlines() if line.startswith("| method | pitch: hear_pitch_accuracy"))
  assert header.count("|") == 2 + len(results["methods"]["cola"]["linear"])
  # The best mean of each column is in bold.
  best = max(results["methods"][r]["linear"]["words: accuracy"]["mean"] for r in results["methods"])
  assert f"**{best:.3f}**" in text


def test_a_second_run_reuses_checkpoints_and_embeddings(suite_run):
  workdir, results = suite_run
  again = audio_suite.run(tiny_suite(), workdir)
  assert again["methods"] == results["methods"]
  assert again["rows"]["cola"]["train_seconds"] == results["rows"]["cola"]["train_seconds"]
  assert again["runtime_s"] < results["runtime_s"]


def _bad(change):
  config = tiny_suite()
  change(config)
  return config


@pytest.mark.parametrize("change,message", [
    (lambda c: setattr(c.eval, "tasks", ("pitch", "speech")), r"config\.eval\.tasks must be one of"),
    (lambda c: setattr(c.eval, "tasks", ("pitch", "pitch")), r"config\.eval\.tasks must be distinct"),
    (lambda c: setattr(c.eval, "probes", ("logistic",)), r"config\.eval\.probes must be one of"),
    (lambda c: setattr(c.eval.events.data, "source", "gm_notes"),
     r"config\.eval\.events\.data\.source must carry frames labels"),
    (lambda c: setattr(c.eval.words, "n_train", 100), r"config\.eval\.words\.pool_examples must be"),
    (lambda c: setattr(c, "methods", ("cola", "cola")), r"config\.methods has repeated entries"),
    (lambda c: setattr(c, "methods", ("colab",)), r"config\.methods must be one of"),
    (lambda c: setattr(c.variants.clip_pitch.pretext, "alfa", 0.0),
     r"config\.variants\.clip_pitch\.pretext\.alfa is not a field"),
    (lambda c: setattr(c.variants.clip_pitch.pretext, "similarity", "dot"),
     r"config\.pretrain \(method 'clip_pitch'\)\.pretext\.similarity must be one of"),
    (lambda c: setattr(c, "baselines", ("supervised",)), r"config\.baselines must be one of"),
    (lambda c: setattr(c.eval.words, "seconds", 0.1), r"config\.eval\.words\.seconds=0\.1 is too short"),
])
def test_bad_suite_configs_fail_at_start_naming_the_field(change, message):
  with pytest.raises(ValueError, match=message):
    audio_suite.validate(_bad(change))
