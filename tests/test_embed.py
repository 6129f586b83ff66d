"""Tests of `shuffle_learn.embed`: WAV reading, the CLI and the Python embedder."""

import wave

import numpy as np
import pytest

from experiments.configs import tiny
from shuffle_learn import embed
from shuffle_learn import train


def write_wav(path, samples, rate=16000, width=2, channels=1):
  scale = 2 ** (8 * width - 1) - 1
  ints = np.round(np.clip(samples, -1, 1) * scale).astype({2: np.int16, 4: np.int32}[width])
  with wave.open(str(path), "wb") as f:
    f.setnchannels(channels)
    f.setsampwidth(width)
    f.setframerate(rate)
    f.writeframes(np.repeat(ints, channels).tobytes() if channels > 1 else ints.tobytes())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("run"))
  config = tiny.get_config()
  config.train.num_steps = 2
  config.train.eval_every = 2
  train.train_and_evaluate(config, workdir)
  return workdir


def test_read_wav_scales_and_averages_channels(tmp_path, rng):
  samples = rng.uniform(-0.9, 0.9, 800)
  for width in (2, 4):
    write_wav(tmp_path / "a.wav", samples, width=width, channels=2)
    np.testing.assert_allclose(embed.read_wav(str(tmp_path / "a.wav")), samples, atol=2.0 ** (1 - 8 * width) * 2)


def test_read_wav_rejects_other_rates_and_non_wav(tmp_path):
  write_wav(tmp_path / "b.wav", np.zeros(100), rate=44100)
  with pytest.raises(ValueError, match="44100 Hz.*16000 Hz; resample"):
    embed.read_wav(str(tmp_path / "b.wav"))
  (tmp_path / "c.wav").write_bytes(b"not a wav at all")
  with pytest.raises(ValueError, match="not a PCM WAV"):
    embed.read_wav(str(tmp_path / "c.wav"))
  write_wav(tmp_path / "d.wav", np.zeros(0))
  with pytest.raises(ValueError, match="no complete audio frames"):
    embed.read_wav(str(tmp_path / "d.wav"))


def test_embedder_cuts_and_pads_to_the_clip(checkpoint, rng):
  embedder = embed.load_embedder(checkpoint)
  n = embedder.num_samples
  assert n == 8000 and embedder.step == 2
  audio = rng.uniform(-0.5, 0.5, (2, n)).astype(np.float32)
  vectors = embedder(audio)
  assert vectors.shape == (2, 4 * 2 * 16) and np.all(np.isfinite(vectors))  # 4 bands, mean and max of 16 maps.
  assert embed.load_embedder(checkpoint, layer="fc7")(audio).shape == (2, 64)
  longer = np.concatenate([audio, rng.uniform(-0.5, 0.5, (2, 100)).astype(np.float32)], axis=1)
  np.testing.assert_array_equal(embedder(longer), vectors)  # Only the clip counts.
  short = audio[:, :n // 2]
  padded = np.concatenate([short, np.zeros_like(short)], axis=1)
  np.testing.assert_array_equal(embedder(short), embedder(padded))
  with pytest.raises(ValueError, match="NaN"):
    embedder(np.full((1, n), np.nan, np.float32))
  with pytest.raises(ValueError, match="samples > 0"):
    embedder(np.zeros((1, 0), np.float32))


def test_cli_writes_one_npy_per_file(checkpoint, tmp_path, rng, capsys):
  paths = []
  for name in ("one", "two"):
    samples = rng.uniform(-0.5, 0.5, 12000)
    write_wav(tmp_path / f"{name}.wav", samples)
    paths.append(str(tmp_path / f"{name}.wav"))
  out = tmp_path / "out"
  assert embed.main(["--checkpoint", checkpoint, "--out", str(out)] + paths) == 0
  embedder = embed.load_embedder(checkpoint)
  for name, path in zip(("one", "two"), paths):
    vector = np.load(out / f"{name}.npy")
    np.testing.assert_allclose(vector, embedder(embed.read_wav(path))[0], rtol=1e-6)
  assert "one.wav ->" in capsys.readouterr().out


def test_cli_fails_before_writing_on_a_bad_file(checkpoint, tmp_path):
  write_wav(tmp_path / "good.wav", np.zeros(1000))
  write_wav(tmp_path / "bad.wav", np.zeros(1000), rate=8000)
  out = tmp_path / "out"
  with pytest.raises(ValueError, match="8000 Hz"):
    embed.main(["--checkpoint", checkpoint, "--out", str(out), str(tmp_path / "good.wav"), str(tmp_path / "bad.wav")])
  assert not out.exists()
