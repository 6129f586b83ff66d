"""Tests of `shuffle_learn.audio_io.read_audio`: formats, channels, rates, and the errors."""

import sys

import numpy as np
import pytest
import soundfile

from shuffle_learn import audio_io


def tone(frequency, seconds, rate, amplitude=0.5):
  return amplitude * np.sin(2 * np.pi * frequency * np.arange(int(round(seconds * rate))) / rate)


def dominant_frequency(samples, rate=16000):
  return np.argmax(np.abs(np.fft.rfft(samples))) * rate / len(samples)


def test_stereo_flac_at_44100_hz_is_averaged_and_resampled(tmp_path):
  n = 44100
  left, right = tone(1000.0, 1.0, 44100, 0.5), tone(1000.0, 1.0, 44100, 0.3)
  soundfile.write(tmp_path / "a.flac", np.stack([left, right], axis=1), 44100, subtype="PCM_24")
  audio = audio_io.read_audio(str(tmp_path / "a.flac"))
  assert audio.dtype == np.float32 and audio.ndim == 1
  assert abs(len(audio) - round(n * 16000 / 44100)) <= 1
  assert abs(dominant_frequency(audio) - 1000.0) <= 16000 / len(audio)  # Within a bin.
  middle = audio[1000:-1000]  # The resampler's edges aside.
  np.testing.assert_allclose(np.sqrt(np.mean(middle**2)), 0.4 / np.sqrt(2), rtol=0.01)  # The channels' mean.


def test_long_ogg_at_22050_hz(tmp_path):
  n = 30 * 22050
  soundfile.write(tmp_path / "b.ogg", tone(3000.0, 30.0, 22050), 22050, format="OGG", subtype="VORBIS")
  audio = audio_io.read_audio(str(tmp_path / "b.ogg"))
  assert abs(len(audio) - round(n * 16000 / 22050)) <= 1
  assert abs(dominant_frequency(audio) - 3000.0) <= 16000 / len(audio)


def test_short_wav_at_16_khz_is_the_exact_channel_mean(tmp_path, rng):
  ints = rng.integers(-32768, 32768, (4800, 2)).astype(np.int16)  # 0.3 s of stereo.
  soundfile.write(tmp_path / "c.wav", ints, 16000, subtype="PCM_16")
  expected = (ints.astype(np.float64).sum(axis=1) / 2 / 32768).astype(np.float32)
  np.testing.assert_array_equal(audio_io.read_audio(str(tmp_path / "c.wav")), expected)


def test_mono_wav_at_16_khz_is_read_unchanged(tmp_path, rng):
  samples = rng.uniform(-1, 1, 1234).astype(np.float32)
  soundfile.write(tmp_path / "d.wav", samples, 16000, subtype="FLOAT")
  np.testing.assert_array_equal(audio_io.read_audio(str(tmp_path / "d.wav")), samples)


@pytest.mark.skipif("MP3" not in soundfile.available_formats(), reason="this libsndfile has no MP3")
def test_mp3_at_48_khz(tmp_path):
  soundfile.write(tmp_path / "e.mp3", tone(440.0, 2.0, 48000), 48000, format="MP3")
  audio = audio_io.read_audio(str(tmp_path / "e.mp3"))
  # MP3 frames add an encoder delay and padding: the length is right to within two 1152-sample frames.
  assert abs(len(audio) - 32000) <= 2 * 1152 * 16000 // 48000
  assert abs(dominant_frequency(audio) - 440.0) <= 16000 / len(audio)


def test_undecodable_empty_and_non_finite_files_name_the_path(tmp_path):
  (tmp_path / "text.wav").write_text("this is not audio\n")
  with pytest.raises(ValueError, match=r"text\.wav: not an audio file that libsndfile can decode"):
    audio_io.read_audio(str(tmp_path / "text.wav"))
  (tmp_path / "empty.flac").write_bytes(b"")
  with pytest.raises(ValueError, match=r"empty\.flac: not an audio file"):
    audio_io.read_audio(str(tmp_path / "empty.flac"))
  soundfile.write(tmp_path / "none.wav", np.zeros((0, 1)), 16000)
  with pytest.raises(ValueError, match=r"none\.wav: the file holds no audio samples"):
    audio_io.read_audio(str(tmp_path / "none.wav"))
  soundfile.write(tmp_path / "nan.wav", np.array([0.0, np.nan, 0.5], np.float32), 16000, subtype="FLOAT")
  with pytest.raises(ValueError, match=r"nan\.wav: the file holds NaN or infinite samples"):
    audio_io.read_audio(str(tmp_path / "nan.wav"))
  with pytest.raises(FileNotFoundError, match=r"missing\.wav: no such file"):
    audio_io.read_audio(str(tmp_path / "missing.wav"))


def test_a_missing_package_says_what_to_install(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "soxr", None)  # Importing it now raises ImportError.
  with pytest.raises(ImportError, match=r"pip install soundfile soxr \(both in shuffle_learn\[train\]\)"):
    audio_io.read_audio(str(tmp_path / "a.wav"))
