"""The contrastive peer objectives in the trainer (`shuffle_learn.pretext.sampling`, `shuffle_learn.models.sampling`)."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import tiny
from shuffle_learn import checkpoints
from shuffle_learn import config as config_lib
from shuffle_learn import embed
from shuffle_learn import models
from shuffle_learn import pretext as pretext_lib
from shuffle_learn import train
from shuffle_learn.data import frontend
from shuffle_learn.models import efficientnet
from shuffle_learn.models import sampling as sampling_model
from shuffle_learn.pretext import contrastive
from shuffle_learn.pretext import sampling

PEER_FIELDS = {"alpha": 1.0, "beta": 1.0, "similarity": "bilinear", "temperature": 0.2, "frame_m": 0,
               "min_shift": 0.8, "max_shift": 1.2, "segment_frames": 32}


def peer_config(loss="multi_sampling", **overrides):
  """The tiny config (0.5 s notes, 32 mel bins, the tiny AlexNet) with a peer objective on 32-frame segments."""
  config = tiny.get_config()
  config.pretext.loss = loss
  for name, value in PEER_FIELDS.items():
    config.pretext[name] = value
  config.train.learning_rate = 1e-3
  for field, value in overrides.items():
    parent, name = field.split("__")
    config[parent][name] = value
  return config


def _log_softmax(x, axis=-1):
  x = np.asarray(x, np.float64)
  m = x.max(axis=axis, keepdims=True)
  return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def _reference_loss(h, w_clip, w_frame, pitch, ratios, weights, m):
  """Eqs. 2, 4-5 and 6-7 in NumPy (float64) from the frame embeddings ``h`` (k, batch, T', d)."""
  h = np.asarray(h, np.float64)
  za, zp = h[0].mean(axis=1), h[1].mean(axis=1)
  s = za @ w_clip @ zp.T
  clip = -np.mean(np.diag(_log_softmax(s)))
  frames = h.reshape((-1,) + h.shape[2:])
  num_frames = frames.shape[1]
  terms = []
  for x in frames:
    s = x @ w_frame @ x.T
    for t in range(num_frames):
      positives = [i for i in range(num_frames) if abs(i - t) <= m]
      log_p = _log_softmax(s[t])
      terms.append(np.log(np.sum(np.exp(log_p[positives]))))
  frame = -np.mean(terms) / (2 * m + 1)
  total = weights[0] * clip + weights[1] * frame
  if weights[2]:
    semitones = 12 * np.log2(np.asarray(ratios, np.float64))
    total += weights[2] * np.mean(np.sum((pitch[0] - pitch[1] - semitones[:, None]) ** 2, axis=-1))
  return total


def test_segments_are_slices_of_the_clip_and_the_shift_is_of_the_anchor(rng):
  input_ = sampling.SegmentsInput(seconds=0.5, num_mel_bins=32, normalization="none", segment_frames=20)
  pretext = sampling.SamplingPretext(input_, sampling.SamplingObjective("multi_sampling"))
  audio = rng.standard_normal((4, 8000)).astype(np.float32)
  segments, ratios = pretext._segments(jnp.asarray(audio), jax.random.key(3))
  assert segments.shape == (3, 4, 20, 32) and ratios.shape == (4,)
  ratios = np.asarray(ratios)
  assert np.all((ratios >= 0.8) & (ratios <= 1.2))
  magnitudes = np.asarray(frontend.stft_magnitude(audio))
  full = np.asarray(frontend.log_mel_spectrogram(audio, num_mel_bins=32))
  for n in range(4):
    found = []
    for k in range(2):  # The anchor and the positive are 20 contiguous frames of the clip's log-mel.
      errors = [np.abs(full[n, o:o + 20] - segments[k, n]).max() for o in range(full.shape[1] - 19)]
      assert min(errors) < 1e-4
      found.append(int(np.argmin(errors)))
    shifted = contrastive.shift_spectrum(magnitudes[n, found[0]:found[0] + 20], ratios[n])
    expected = frontend.log_mel_from_magnitude(shifted, num_mel_bins=32)
    np.testing.assert_allclose(segments[2, n], expected, atol=1e-4)
  # Without L_pitch no shifted copy is made.
  cola = sampling.SamplingPretext(input_, sampling.SamplingObjective("cola"))
  segments, ratios = cola._segments(jnp.asarray(audio), jax.random.key(3))
  assert segments.shape == (2, 4, 20, 32) and ratios is None


def test_log_mel_standardises_every_segment(rng):
  input_ = sampling.SegmentsInput(seconds=0.5, num_mel_bins=32, segment_frames=20)
  spec = np.asarray(input_.spectrogram(jnp.asarray(rng.standard_normal((3, 8000)), jnp.float32)))
  np.testing.assert_allclose(spec.mean(axis=(1, 2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(spec.std(axis=(1, 2)), 1.0, atol=1e-3)
  # A shorter clip is zero-padded on the host; a longer one cut.
  assert input_.host({"audio": np.ones((2, 100))}).shape == (2, 8000)
  assert input_.host({"audio": np.ones((2, 9000))}).shape == (2, 8000)


@pytest.mark.parametrize("loss,m", [("multi_sampling", 0), ("multi_sampling", 1), ("cola", 0), ("frame", 1),
                                    ("pitch", 0)])
def test_loss_matches_the_numpy_reference(rng, loss, m):
  objective = sampling.SamplingObjective(loss, alpha=0.7, beta=0.3, frame_m=m)
  input_ = sampling.SegmentsInput(seconds=0.5, num_mel_bins=32, segment_frames=32)
  pretext = sampling.SamplingPretext(input_, objective)
  model = sampling_model.SamplingNet(models.SIZES["tiny"], features=16)
  params = pretext.init_params(model, jax.random.key(0))
  audio = jnp.asarray(rng.standard_normal((5, 8000)), jnp.float32)
  key = jax.random.key(1)
  loss_value, metrics = pretext.train_loss(model, audio, key)(params)
  segments, ratios = pretext._segments(audio, jax.random.split(key)[0])
  h = model.apply(params, segments.reshape((-1,) + segments.shape[2:]), method=sampling_model.SamplingNet.frames)
  h = np.asarray(h).reshape(segments.shape[:2] + h.shape[1:])
  pitch = None
  if objective.weights[2]:
    pitch = np.asarray(model.apply(params, jnp.asarray(h[[2, 0]]), method=sampling_model.SamplingNet.pitch))
  variables = jax.tree.map(np.asarray, params["params"])
  expected = _reference_loss(h, variables["w_clip"].astype(np.float64), variables["w_frame"].astype(np.float64),
                             pitch, ratios, objective.weights, m)
  np.testing.assert_allclose(float(loss_value), expected, rtol=2e-4)
  assert set(metrics) == {"clip_accuracy"} | {name for name, w in zip(("clip_loss", "frame_loss", "pitch_loss"),
                                                                        objective.weights) if w}
  za, zp = h[0].mean(axis=1), h[1].mean(axis=1)
  s = za @ variables["w_clip"] @ zp.T
  np.testing.assert_allclose(float(metrics["clip_accuracy"]), np.mean(np.argmax(s, axis=1) == np.arange(5)))


def test_cosine_similarity_is_used_when_asked(rng):
  input_ = sampling.SegmentsInput(seconds=0.5, num_mel_bins=32, segment_frames=32)
  pretext = sampling.SamplingPretext(input_, sampling.SamplingObjective("cola", similarity="cosine"))
  model = sampling_model.SamplingNet(models.SIZES["tiny"], features=16)
  params = pretext.init_params(model, jax.random.key(0))
  audio = jnp.asarray(rng.standard_normal((4, 8000)), jnp.float32)
  loss, _ = pretext.train_loss(model, audio, jax.random.key(1))(params)
  segments, _ = pretext._segments(audio, jax.random.split(jax.random.key(1))[0])
  h = np.asarray(model.apply(params, segments.reshape((-1,) + segments.shape[2:]),
                             method=sampling_model.SamplingNet.frames)).reshape(2, 4, -1, 16).mean(axis=2)
  a, b = h / np.linalg.norm(h, axis=-1, keepdims=True)
  expected = -np.mean(np.diag(_log_softmax(a @ b.T / 0.2)))
  np.testing.assert_allclose(float(loss), expected, rtol=1e-4)


def test_sampling_net_frames():
  # EfficientNet's frames are tested in test_efficientnet.py and trained below.
  model = sampling_model.SamplingNet(models.ENCODERS["tiny"], features=8)
  x = jnp.zeros((2, 96, 64))
  params = model.init(jax.random.key(0), x)
  assert set(params["params"]) >= {"backbone", "dense", "norm", "w_clip", "w_frame", "pitch_head"}
  h = model.apply(params, x, method=sampling_model.SamplingNet.frames)
  frames = 12  # 96 / 2 / 2 / 2: conv, pool, conv (no pool after the last convolution's map).
  assert h.shape == (2, frames, 8) and np.all(np.abs(np.asarray(h)) <= 1.0)
  # Fully convolutional: a longer clip gives more frames with the same parameters.
  assert model.apply(params, jnp.zeros((1, 192, 64)), method=sampling_model.SamplingNet.frames).shape[1] == 2 * frames
  with pytest.raises(ValueError, match="^encoder"):
    sampling_model.SamplingNet(models.SIZES["resnet_tiny"])


def test_a_peer_objective_trains_above_chance_and_resumes_exactly(tmp_path):
  config = peer_config("cola", train__num_steps=80, train__eval_every=40, train__checkpoint_every=40)
  summary = train.train_and_evaluate(config, str(tmp_path / "full"))
  assert summary["chance"] == 1 / 8
  # Notes of 3 programs x many pitches: the segments of one note are told from the 7 others well above chance.
  assert summary["valid"]["clip_accuracy"] > 0.4, summary
  half = train.train_and_evaluate(config, str(tmp_path / "half"), stop_after=40)
  assert half["step"] == 40
  train.train_and_evaluate(config, str(tmp_path / "half"))
  chex.assert_trees_all_equal(checkpoints.load_checkpoint(str(tmp_path / "full"))[1],
                              checkpoints.load_checkpoint(str(tmp_path / "half"))[1])
  # The checkpoint embeds audio: the frame embeddings h of the whole clip, averaged over frames.
  embedder = embed.load_embedder(str(tmp_path / "full"))
  audio = np.random.default_rng(0).standard_normal((2, 8000)).astype(np.float32)
  params = checkpoints.load_checkpoint(str(tmp_path / "full"))[1]
  pretext = pretext_lib.from_config(config)
  h = pretext.make_model(config).apply(params, pretext.input.spectrogram(audio),
                                       method=sampling_model.SamplingNet.frames)
  np.testing.assert_allclose(embedder(audio), np.asarray(h).mean(axis=1), rtol=1e-5, atol=1e-6)
  assert embedder(audio[0, :3000]).shape == (1, 512)  # Zero-padded to the config's clip.
  with pytest.raises(ValueError, match="names a CFN layer"):
    embed.load_embedder(str(tmp_path / "full"), layer="fc7")


@pytest.mark.parametrize("loss", ["frame", "pitch", "multi_sampling"])
def test_every_peer_objective_trains(tmp_path, loss):
  summary = train.train_and_evaluate(peer_config(loss, train__num_steps=6, train__eval_every=6),
                                     str(tmp_path))
  assert summary["step"] == 6 and math.isfinite(summary["valid"]["loss"])


def test_efficientnet_encoder_trains(tmp_path):
  config = peer_config("multi_sampling", model__size="efficientnet_tiny", train__num_steps=3, train__eval_every=3)
  config.features.num_mel_bins = 32
  summary = train.train_and_evaluate(config, str(tmp_path))
  assert summary["step"] == 3 and math.isfinite(summary["valid"]["loss"])
  params = checkpoints.load_checkpoint(str(tmp_path))[1]
  assert isinstance(models.sampling_from_config(config).encoder, efficientnet.EfficientNetConfig)
  assert "backbone" in params["params"]


@pytest.mark.parametrize("field,value,message", [
    ("pretext__similarity", "dot", r"config\.pretext\.similarity must be one of"),
    ("pretext__alpha", -1.0, r"config\.pretext\.alpha must be"),
    ("pretext__temperature", 0.0, r"config\.pretext\.temperature must be"),
    ("pretext__frame_m", -1, r"config\.pretext\.frame_m must be"),
    ("pretext__max_shift", 0.5, r"config\.pretext\.max_shift must be >= min_shift"),
    ("pretext__segment_frames", 200, r"config\.features\.seconds must hold a segment of 200 frames"),
    ("pretext__segment_frames", 2, r"config\.pretext\.segment_frames: segments of 2 frames .* too small"),
    ("features__kind", "log_spectrogram", r"config\.features\.kind must be 'log_mel'"),
    ("model__size", "resnet_tiny", r"config\.model\.size must be one of"),
    ("pretext__modality", "image", r"config\.pretext\.modality must be 'audio' for pretext\.loss='cola'"),
])
def test_bad_peer_config_values_fail_at_start_naming_the_field(field, value, message):
  with pytest.raises(ValueError, match=message):
    config_lib.validate(peer_config("cola", **{field: value}))


def test_a_missing_peer_field_is_named():
  config = peer_config("cola")
  del config.pretext["beta"]
  with pytest.raises(ValueError, match=r"config\.pretext\.beta"):
    config_lib.validate(config)


def test_unread_fields():
  assert config_lib.unread_fields(peer_config("cola")) >= {"pretext.sigma", "pretext.n_rows"}
  assert "pretext.alpha" not in config_lib.unread_fields(peer_config("cola"))
  assert "pretext.alpha" in config_lib.unread_fields(peer_config("perturbed_fy"))
  assert set(pretext_lib.LOSSES) == {"perturbed_fy", "fast_soft_rank", "mse", "fixed_permutation", "cola", "frame",
                                     "pitch", "multi_sampling"}
