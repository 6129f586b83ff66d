"""Embeddings of audio files from a pre-trained checkpoint.

  python -m shuffle_learn.embed --checkpoint DIR [--step N] [--out OUT_DIR] AUDIO.wav [...]

writes ``OUT_DIR/<file stem>.npy`` (float32, the embedding: the CFN's pooled
convolutional features, `CFN.conv_embed`; ``--layer fc7`` for fc7) for every file.
In Python:

  from shuffle_learn import embed
  embedder = embed.load_embedder("/tmp/nsynth/pretrain/perturbed_fy")
  vectors = embedder(audio)          # audio: (batch, samples) float32 at 16 kHz

Audio: WAV files (PCM 8, 16, 24 or 32 bit, any number of channels, averaged to
mono) at 16 kHz; another rate is an error (resample first). The model sees the
first ``features.seconds`` of its config (1 s for the default): longer audio is
cut, shorter audio is padded with silence at the end, and an empty or
non-finite file is an error.
"""

from __future__ import annotations

import argparse
import os
import sys
import wave

import numpy as np

from shuffle_learn.data.schema import SAMPLE_RATE


def read_wav(path: str) -> np.ndarray:
  """Mono float32 samples in [-1, 1] of a 16 kHz PCM WAV file.

  Raises:
    ValueError: not a readable PCM WAV, another sample rate, no samples.
  """
  try:
    with wave.open(path, "rb") as f:
      rate, width, channels, count = f.getframerate(), f.getsampwidth(), f.getnchannels(), f.getnframes()
      raw = f.readframes(count)
  except (wave.Error, EOFError) as e:
    raise ValueError(f"{path}: not a PCM WAV file ({e}).") from None
  if rate != SAMPLE_RATE:
    raise ValueError(f"{path}: sample rate {rate} Hz, the model needs {SAMPLE_RATE} Hz; resample the file first.")
  if width == 3:  # 24-bit: widen to 32 bits.
    bytes_ = np.frombuffer(raw, np.uint8).reshape(-1, 3)
    raw = np.concatenate([np.zeros((len(bytes_), 1), np.uint8), bytes_], axis=1).tobytes()
    width = 4
  dtype = {1: np.uint8, 2: np.int16, 4: np.int32}.get(width)
  if dtype is None:
    raise ValueError(f"{path}: unsupported sample width of {width} bytes.")
  samples = np.frombuffer(raw, dtype)
  if len(samples) == 0 or len(samples) % channels:
    raise ValueError(f"{path}: no complete audio frames.")
  samples = samples.reshape(-1, channels).astype(np.float64)
  if dtype is np.uint8:
    samples = (samples - 128.0) / 128.0
  else:
    samples /= float(2 ** (8 * width - 1))
  return samples.mean(axis=1).astype(np.float32)


def fit_length(audio: np.ndarray, num_samples: int) -> np.ndarray:
  """Cut to, or zero-pad at the end to, ``num_samples``."""
  if len(audio) >= num_samples:
    return audio[:num_samples]
  return np.pad(audio, (0, num_samples - len(audio)))


def load_embedder(workdir: str, step: int | None = None, layer: str = "conv"):
  """A function from audio ``(batch, samples)`` at 16 kHz to embeddings ``(batch, d)``.

  ``layer`` is ``"conv"`` (`CFN.conv_embed`, what the main job probes), ``"fc6"`` (`CFN.fc6_embed`) or
  ``"fc7"`` (`CFN.embed`). A contrastive peer's checkpoint (``cola``,
  ``multi_sampling``, ...) gives its frame embeddings ``h`` averaged over
  frames (`embeddings.sampling_embedder`), with the default ``layer`` only.

  Audio is cut or zero-padded to the config's clip. The function has the
  attributes ``num_samples``, ``step`` and ``config``.
  """
  from shuffle_learn import checkpoints  # pylint: disable=g-import-not-at-top
  from shuffle_learn import pretext as pretext_lib  # pylint: disable=g-import-not-at-top
  from shuffle_learn.evaluators import embeddings  # pylint: disable=g-import-not-at-top
  from shuffle_learn.pretext import sampling  # pylint: disable=g-import-not-at-top
  config, params, step = checkpoints.load_checkpoint(workdir, step)
  pretext = pretext_lib.from_config(config)
  model = pretext.make_model(config)
  if isinstance(pretext, sampling.SamplingPretext):
    if layer != "conv":
      raise ValueError(f"layer={layer!r} names a CFN layer; {workdir} holds a {config.pretext.loss!r} network, "
                       f"whose embedding is its frame embeddings h averaged over frames (use the default).")
    embed = embeddings.sampling_embedder(model, params, pretext.input)
  else:
    embed = embeddings.cfn_embedder(model, params, pretext.input, layer)
  num_samples = pretext.input.num_samples

  def embedder(audio) -> np.ndarray:
    audio = np.asarray(audio, np.float32)
    if audio.ndim == 1:
      audio = audio[None]
    if audio.ndim != 2 or audio.shape[1] == 0:
      raise ValueError(f"audio must be (batch, samples) with samples > 0, got shape {audio.shape}.")
    if not np.all(np.isfinite(audio)):
      raise ValueError("audio contains NaN or infinite samples.")
    audio = np.stack([fit_length(a, num_samples) for a in audio])
    return embed(audio)

  embedder.num_samples, embedder.step, embedder.config = num_samples, step, config
  return embedder


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--checkpoint", required=True, help="a training workdir (shuffle_learn.train --workdir)")
  parser.add_argument("--step", type=int, default=None, help="a checkpointed step; the latest by default")
  parser.add_argument("--out", default=".", help="directory for the .npy files")
  parser.add_argument("--layer", default="conv", choices=("conv", "fc6", "fc7"),
                      help="conv: pooled convolutional features (what the main job probes); fc6 per patch; fc7")
  parser.add_argument("audio", nargs="+", help="16 kHz WAV files")
  args = parser.parse_args(argv)
  # Read every file first: a bad one fails before anything is written.
  audio = [read_wav(path) for path in args.audio]
  stems = [os.path.splitext(os.path.basename(p))[0] for p in args.audio]
  if len(set(stems)) != len(stems):
    raise SystemExit("error: two input files share a name; embed them into different --out directories.")
  embedder = load_embedder(args.checkpoint, args.step, args.layer)
  os.makedirs(args.out, exist_ok=True)
  for path, stem, samples in zip(args.audio, stems, audio):
    vector = embedder(samples)[0]
    np.save(os.path.join(args.out, f"{stem}.npy"), vector)
    print(f"{path} -> {os.path.join(args.out, stem + '.npy')} ({vector.shape[0]} dims, step {embedder.step})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
