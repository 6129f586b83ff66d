"""Audio files as the models read them: mono float32 at 16 kHz.

`read_audio` decodes WAV, FLAC, OGG (Vorbis, Opus) and MP3, or any other
format libsndfile reads (`soundfile.available_formats()`), averages the
channels, and resamples any other rate to `schema.SAMPLE_RATE` with soxr
(quality ``"HQ"``, soxr's default). It needs ``soundfile`` and ``soxr``:
``pip install soundfile soxr``, both in ``shuffle_learn[train]``.
"""

from __future__ import annotations

import os

import numpy as np

from shuffle_learn.data.schema import SAMPLE_RATE

RESAMPLE_QUALITY = "HQ"


def read_audio(path: str) -> np.ndarray:
  """The samples of an audio file: mono float32 at 16 kHz, shape ``(samples,)``.

  Channels are averaged; another rate is resampled with
  ``soxr.resample(..., quality="HQ")`` (about ``round(n * 16000 / rate)``
  samples from ``n``); integer formats are scaled to [-1, 1).

  Raises:
    FileNotFoundError: ``path`` does not exist.
    ValueError: naming ``path``: not an audio file libsndfile can decode,
      no samples (before or after resampling), or NaN or infinite samples.
    ImportError: soundfile or soxr is not installed.
  """
  try:
    import soundfile  # pylint: disable=g-import-not-at-top
    import soxr  # pylint: disable=g-import-not-at-top
  except (ImportError, OSError) as e:  # soundfile raises OSError when libsndfile is missing.
    raise ImportError(f"reading audio files needs soundfile and soxr: pip install soundfile soxr "
                      f"(both in shuffle_learn[train]) ({e}).") from None
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such file.")
  try:
    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)  # (frames, channels)
  except (RuntimeError, TypeError) as e:  # soundfile.LibsndfileError is a RuntimeError.
    raise ValueError(f"{path}: not an audio file that libsndfile can decode "
                     f"({getattr(e, 'error_string', None) or e}).") from None
  if samples.size == 0:
    raise ValueError(f"{path}: the file holds no audio samples.")
  mono = samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1)
  if not np.all(np.isfinite(mono)):
    raise ValueError(f"{path}: the file holds NaN or infinite samples.")
  if rate != SAMPLE_RATE:
    mono = soxr.resample(mono, rate, SAMPLE_RATE, quality=RESAMPLE_QUALITY)
    if len(mono) == 0:
      raise ValueError(f"{path}: {len(samples)} samples at {rate} Hz are no sample at {SAMPLE_RATE} Hz.")
  return np.ascontiguousarray(mono, np.float32)
