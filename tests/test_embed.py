"""Tests of `shuffle_learn.embed`: window placement, frame and clip embeddings, the CLI and the shipped model."""

import numpy as np
import pytest
import soundfile

from shuffle_learn import audio_io
from shuffle_learn import checkpoints
from shuffle_learn import embed
from shuffle_learn import pretrained

# Batches of other sizes are other XLA programs: float32 sums in another order.
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
  return tiny_checkpoint


@pytest.fixture(scope="module")
def embedder(checkpoint):
  return embed.load_embedder(checkpoint)


def identity_embedder(num_samples):
  """A fake model whose embedding of a window is the window."""
  fake = lambda audio: np.array(audio, np.float32)
  fake.num_samples = num_samples
  return fake


def test_windows_are_centred_every_hop_and_zero_padded():
  audio = np.arange(1, 11, dtype=np.float32)  # 10 samples.
  hop = 3 / 16000  # 3 samples: centres 0, 3, 6, 9.
  expected = [[0, 0, 1, 2], [2, 3, 4, 5], [5, 6, 7, 8], [8, 9, 10, 0]]  # Window k: samples 3k - 2 .. 3k + 1.
  for batch_size in (1, 2, 3, 64):
    frames, timestamps = embed.embed_frames(identity_embedder(4), audio, hop, batch_size)
    np.testing.assert_array_equal(frames, expected)
    np.testing.assert_array_equal(timestamps, [0.0, 0.1875, 0.375, 0.5625])  # 1000 * 3k / 16000 ms.
    assert frames.dtype == np.float32 and timestamps.dtype == np.float64
  frames, _ = embed.embed_frames(identity_embedder(5), audio, 4 / 16000)  # Odd windows: samples c - 2 .. c + 2.
  np.testing.assert_array_equal(frames, [[0, 0, 1, 2, 3], [3, 4, 5, 6, 7], [7, 8, 9, 10, 0]])
  frames, timestamps = embed.embed_frames(identity_embedder(6), audio[:2], 1.0)  # Shorter than a window.
  np.testing.assert_array_equal(frames, [[0, 0, 0, 1, 2, 0]])
  np.testing.assert_array_equal(timestamps, [0.0])


def test_window_count_and_timestamps_at_the_default_hop():
  for seconds, count in ((1.07, 22), (1.98, 40), (2.74, 55), (4.0, 80), (0.3, 6), (1 / 16000, 1)):
    n = int(round(seconds * 16000))
    _, timestamps = embed.embed_frames(identity_embedder(8), np.zeros(n), embed.HOP_SECONDS, batch_size=16)
    assert len(timestamps) == count == -(-n // 800)
    np.testing.assert_array_equal(timestamps, 50.0 * np.arange(count))
    assert 1000 * n / 16000 - 50 <= timestamps[-1] < 1000 * n / 16000  # The last within one hop of the end.


def test_hop_is_rounded_to_whole_samples():
  assert embed.hop_samples(0.05) == 800 and embed.hop_samples(0.0333) == 533
  _, timestamps = embed.embed_frames(identity_embedder(8), np.zeros(2000), 0.0333)
  np.testing.assert_array_equal(timestamps, 1000 * 533 * np.arange(4) / 16000)
  for hop in (0.0, -0.01, 1e-5, float("nan")):
    with pytest.raises(ValueError, match="hop_seconds must be at least one sample"):
      embed.embed_frames(identity_embedder(8), np.zeros(100), hop)


def test_bad_audio_raises():
  fake = identity_embedder(8)
  for audio, message in ((np.zeros((2, 10)), "one sound"), (np.zeros(0), "one sound"),
                         (np.array([0.0, np.inf]), "NaN or infinite")):
    with pytest.raises(ValueError, match=message):
      embed.embed_frames(fake, audio)
  with pytest.raises(ValueError, match="batch_size"):
    embed.embed_frames(fake, np.zeros(10), batch_size=0)


def test_frames_are_the_model_on_each_window(embedder, rng):
  n = embedder.num_samples  # 8000: 0.5 s.
  audio = rng.uniform(-0.5, 0.5, 17120).astype(np.float32)  # 1.07 s: 22 windows.
  frames, timestamps = embed.embed_frames(embedder, audio)
  assert frames.shape == (22, 128) and frames.dtype == np.float32
  padded = np.pad(audio, (n // 2, n))
  for k in (0, 5, 21):
    np.testing.assert_allclose(frames[k], embedder(padded[800 * k:800 * k + n])[0], **TOLERANCE)
  np.testing.assert_allclose(embed.embed_frames(embedder, audio, batch_size=1)[0], frames, **TOLERANCE)
  np.testing.assert_allclose(embed.embed_clip(embedder, audio), frames.mean(axis=0), rtol=1e-6)
  np.testing.assert_array_equal(timestamps, 50.0 * np.arange(22))


def test_embedder_cuts_and_pads_to_the_clip(checkpoint, embedder, rng):
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


def test_no_workdir_is_the_shipped_model(checkpoint, embedder, tmp_path, monkeypatch, rng):
  monkeypatch.setattr(pretrained, "DIRECTORY", str(tmp_path / "absent"))
  with pytest.raises(FileNotFoundError, match="shipped model is missing"):
    embed.load_embedder()
  assert checkpoints.export(checkpoint, str(tmp_path / "audio_cfn")) == 2
  monkeypatch.setattr(pretrained, "DIRECTORY", str(tmp_path / "audio_cfn"))
  shipped = embed.load_embedder()
  assert shipped.step == 2 and shipped.num_samples == embedder.num_samples
  audio = rng.uniform(-0.5, 0.5, (2, embedder.num_samples)).astype(np.float32)
  np.testing.assert_array_equal(shipped(audio), embedder(audio))


def write_inputs(directory, rng):
  """A 44.1 kHz stereo FLAC, a 22.05 kHz OGG, a 0.3 s WAV and a text file named .wav."""
  soundfile.write(directory / "one.flac", rng.uniform(-0.5, 0.5, (44100, 2)), 44100)
  soundfile.write(directory / "two.ogg", rng.uniform(-0.5, 0.5, 2 * 22050), 22050, format="OGG")
  soundfile.write(directory / "three.wav", rng.uniform(-0.5, 0.5, 4800), 16000)
  (directory / "bad.wav").write_text("not audio")
  return {name: str(directory / file) for name, file in
          (("one", "one.flac"), ("two", "two.ogg"), ("three", "three.wav"), ("bad", "bad.wav"))}


def test_cli_writes_the_good_files_and_reports_the_bad_one(checkpoint, embedder, tmp_path, rng, capsys):
  paths = write_inputs(tmp_path, rng)
  out = tmp_path / "out"
  argv = ["--checkpoint", checkpoint, "--out", str(out)]
  assert embed.main(argv + [paths["one"], paths["bad"], paths["two"], paths["three"]]) == 1
  captured = capsys.readouterr()
  assert f"error: {paths['bad']}: not an audio file that libsndfile can decode" in captured.err
  assert "1 of 4 files could not be embedded" in captured.err
  assert f"{paths['one']} -> {out / 'one.npy'} (128,) (step 2)" in captured.out
  assert sorted(p.name for p in out.iterdir()) == ["one.npy", "three.npy", "two.npy"]
  for name in ("one", "two", "three"):
    expected = embed.embed_clip(embedder, audio_io.read_audio(paths[name]))
    np.testing.assert_allclose(np.load(out / f"{name}.npy"), expected, **TOLERANCE)

  assert embed.main(argv + ["--timestamps", "--hop", "0.025", "--batch-size", "7", paths["three"]]) == 0
  frames, timestamps = embed.embed_frames(embedder, audio_io.read_audio(paths["three"]), 0.025)
  np.testing.assert_allclose(np.load(out / "three.npy"), frames, **TOLERANCE)
  np.testing.assert_array_equal(np.load(out / "three.timestamps.npy"), 25.0 * np.arange(12))
  assert frames.shape == (12, 128)


def test_cli_npz_holds_every_good_file(checkpoint, embedder, tmp_path, rng, capsys):
  paths = write_inputs(tmp_path, rng)
  npz = tmp_path / "all" / "emb.data"  # Written under exactly this name.
  argv = ["--checkpoint", checkpoint, "--npz", str(npz), "--timestamps"]
  assert embed.main(argv + [paths["one"], paths["two"], paths["bad"]]) == 1
  assert "bad.wav: not an audio file" in capsys.readouterr().err
  with np.load(npz) as data:
    assert sorted(data.files) == ["one", "one_timestamps", "two", "two_timestamps"]
    frames, timestamps = embed.embed_frames(embedder, audio_io.read_audio(paths["two"]))
    np.testing.assert_allclose(data["two"], frames, **TOLERANCE)
    np.testing.assert_array_equal(data["two_timestamps"], timestamps)
    assert data["one"].shape == (20, 128)  # 1 s every 50 ms.
  assert embed.main(["--checkpoint", checkpoint, "--npz", str(tmp_path / "none.npz"), paths["bad"]]) == 1
  assert not (tmp_path / "none.npz").exists()  # Nothing embedded, nothing written.


def test_cli_refuses_clashing_names_before_any_work(checkpoint, tmp_path, rng, capsys):
  (tmp_path / "a").mkdir()
  (tmp_path / "b").mkdir()
  for directory in ("a", "b"):
    soundfile.write(tmp_path / directory / "x.wav", rng.uniform(-0.5, 0.5, 1600), 16000)
  out = tmp_path / "out"
  with pytest.raises(SystemExit) as exit_:
    embed.main(["--checkpoint", checkpoint, "--out", str(out), str(tmp_path / "a" / "x.wav"),
                str(tmp_path / "b" / "x.wav")])
  assert exit_.value.code == 2
  assert "would both write x.npy" in capsys.readouterr().err
  assert not out.exists()
  soundfile.write(tmp_path / "x_timestamps.wav", rng.uniform(-0.5, 0.5, 1600), 16000)
  with pytest.raises(SystemExit):  # x's timestamps and x_timestamps's embeddings would share a key.
    embed.main(["--checkpoint", checkpoint, "--npz", str(tmp_path / "e.npz"), "--timestamps",
                str(tmp_path / "a" / "x.wav"), str(tmp_path / "x_timestamps.wav")])
  assert not (tmp_path / "e.npz").exists()
