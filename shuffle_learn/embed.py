"""Embeddings of audio of any length from a pre-trained checkpoint or the shipped model.

  python -m shuffle_learn.embed [--checkpoint DIR] [--timestamps] [--out OUT_DIR | --npz FILE] AUDIO [...]

reads every file (WAV, FLAC, OGG, MP3, ...: `audio_io.read_audio`, mono at
16 kHz) and writes ``OUT_DIR/<file stem>.npy``: the clip embedding ``(d,)``,
float32. With ``--timestamps`` it writes the frame embeddings ``(T, d)``
instead and ``OUT_DIR/<stem>.timestamps.npy``, their times ``(T,)`` in
milliseconds (float64). ``--npz FILE`` puts every file's arrays in one
``.npz`` instead, under the key ``<stem>`` (and ``<stem>_timestamps``),
written at the end when at least one file was embedded.
Without ``--checkpoint`` the model is the shipped one
(`shuffle_learn.pretrained`); else a training workdir or an exported model
(`checkpoints.export`). The embedding is the CFN's pooled convolutional
features (`CFN.conv_embed`; ``--layer fc6`` or ``fc7`` for the others).

A file that cannot be read is reported on stderr with its error; every other
file is embedded and written (the ``.npz``, written at the end, holds them)
and the exit status is 1. Two inputs whose outputs would share a name (the
same stem from two directories) are an error before anything is read or
written (exit status 2): embed them in two calls.

Frames: the model sees clips of ``num_samples`` samples (``features.seconds``
of its config: 1 s for the default). Window ``k`` is centred on sample
``c_k = k * hop``, for every ``k`` with ``c_k < n`` (``n`` the samples of the
audio, so ``T = ceil(n / hop)``): it holds samples ``c_k - num_samples // 2``
to ``c_k - num_samples // 2 + num_samples - 1``, zeros where those fall
outside the audio (audio shorter than a window is padded the same way). Its
timestamp is ``1000 * c_k / 16000`` ms: 0, 50, 100, ... ms for the default
hop of 50 ms (``--hop`` is rounded to whole samples, 1/16 ms); the last is
within one hop of the end. The clip embedding is the mean of the frame
embeddings. Windows are embedded ``--batch-size`` at a time (64), each batch
cut from the audio when it is embedded, so long audio never holds all its
windows in memory.

In Python:

  from shuffle_learn import audio_io, embed
  embedder = embed.load_embedder()   # or embed.load_embedder("/tmp/nsynth/pretrain/perturbed_fy")
  frames, timestamps_ms = embed.embed_frames(embedder, audio_io.read_audio("a.flac"))
  vector = embed.embed_clip(embedder, audio)
  vectors = embedder(clips)          # clips: (batch, samples) at 16 kHz, each cut or padded to one clip
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Callable

import numpy as np

from shuffle_learn import audio_io
from shuffle_learn.data.schema import SAMPLE_RATE

HOP_SECONDS = 0.05  # HEAR's largest hop (hearbenchmark.com/hear-api.html).
BATCH_SIZE = 64  # Windows per call of the model.


def fit_length(audio: np.ndarray, num_samples: int) -> np.ndarray:
  """Cut to, or zero-pad at the end to, ``num_samples``."""
  if len(audio) >= num_samples:
    return audio[:num_samples]
  return np.pad(audio, (0, num_samples - len(audio)))


def load_embedder(workdir: str | None = None, step: int | None = None, layer: str = "conv"):
  """A function from audio ``(batch, samples)`` at 16 kHz to embeddings ``(batch, d)``.

  Args:
    workdir: a training workdir or an exported model (`checkpoints.export`);
      None for the shipped model (`shuffle_learn.pretrained.path()`).
    step: a checkpointed step; None for the newest intact one.
    layer: ``"conv"`` (`CFN.conv_embed`, what the main job probes), ``"fc6"``
      (`CFN.fc6_embed`) or ``"fc7"`` (`CFN.embed`). A contrastive peer's
      checkpoint (``cola``, ``multi_sampling``, ...) gives its frame
      embeddings ``h`` averaged over frames (`embeddings.sampling_embedder`),
      with the default ``layer`` only.

  Returns:
    The embedder: every row of its input is cut or zero-padded at the end
    to the config's clip (`embed_frames` embeds longer audio). It has the
    attributes ``num_samples`` (the clip), ``step`` and ``config``.

  Raises:
    FileNotFoundError: no checkpoint there, or no shipped model.
  """
  from shuffle_learn import checkpoints  # pylint: disable=g-import-not-at-top
  from shuffle_learn import pretext as pretext_lib  # pylint: disable=g-import-not-at-top
  from shuffle_learn import pretrained  # pylint: disable=g-import-not-at-top
  from shuffle_learn.evaluators import embeddings  # pylint: disable=g-import-not-at-top
  from shuffle_learn.pretext import sampling  # pylint: disable=g-import-not-at-top
  workdir = workdir or pretrained.path()
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


def hop_samples(hop_seconds: float) -> int:
  """The hop in whole samples at 16 kHz: ``round(hop_seconds * 16000)``, at least 1.

  Raises:
    ValueError: ``hop_seconds`` is not positive or is under half a sample.
  """
  if not hop_seconds > 0 or round(hop_seconds * SAMPLE_RATE) < 1:
    raise ValueError(f"hop_seconds must be at least one sample (1/{SAMPLE_RATE} s), got {hop_seconds!r}.")
  return int(round(hop_seconds * SAMPLE_RATE))


def window_centres(num_audio_samples: int, hop: int) -> np.ndarray:
  """The samples the windows are centred on: ``0, hop, 2 hop, ...`` below ``num_audio_samples``, int64."""
  return np.arange(math.ceil(num_audio_samples / hop), dtype=np.int64) * hop


def windows(audio: np.ndarray, num_samples: int, hop: int, first: int, count: int) -> np.ndarray:
  """Windows ``first`` to ``first + count - 1`` of ``audio`` (see the module docstring), ``(count, num_samples)``.

  Window ``k`` holds ``audio[k * hop - num_samples // 2:][:num_samples]``
  with zeros outside the audio. Only the stretch of audio these windows
  cover is copied; the windows are a strided view of it.
  """
  start = first * hop - num_samples // 2
  stop = start + (count - 1) * hop + num_samples  # > 0: centres are >= 0.
  inside = audio[max(start, 0):stop]
  before = max(-start, 0)
  stretch = np.pad(inside, (before, stop - start - before - len(inside)))
  return np.lib.stride_tricks.sliding_window_view(stretch, num_samples)[::hop]


def embed_frames(embedder, audio, hop_seconds: float = HOP_SECONDS, batch_size: int = BATCH_SIZE,
                 progress: Callable[[int], object] | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Frame embeddings of audio of any length: one per window of the model's clip, every ``hop_seconds``.

  Windows and timestamps as in the module docstring: window ``k`` centred on
  sample ``k * hop`` (``hop = hop_samples(hop_seconds)``) for every such
  sample of the audio, zeros outside it.

  Args:
    embedder: from `load_embedder` (any function of ``(batch, num_samples)``
      audio with a ``num_samples`` attribute).
    audio: ``(samples,)`` at 16 kHz, finite.
    hop_seconds: between window centres.
    batch_size: windows per call of ``embedder``. A shorter last batch is
      filled up to the next power of two (at most ``batch_size``) with the
      windows after the audio's last, then dropped, so that the model is
      compiled for few shapes.
    progress: called with the number of windows after every batch.

  Returns:
    ``(embeddings (T, d) float32, timestamps_ms (T,) float64)``, ``T = ceil(samples / hop)``.

  Raises:
    ValueError: ``audio`` is not 1-D, is empty or not finite; a bad hop or batch size.
  """
  audio = np.asarray(audio, np.float32)
  if audio.ndim != 1 or len(audio) == 0:
    raise ValueError(f"audio must be one sound, (samples,) with samples > 0, got shape {audio.shape}.")
  if not np.all(np.isfinite(audio)):
    raise ValueError("audio contains NaN or infinite samples.")
  if not isinstance(batch_size, int) or batch_size < 1:
    raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
  hop = hop_samples(hop_seconds)
  centres = window_centres(len(audio), hop)
  outputs = []
  for first in range(0, len(centres), batch_size):
    count = min(batch_size, len(centres) - first)
    size = min(batch_size, 1 << (count - 1).bit_length())
    outputs.append(np.asarray(embedder(windows(audio, embedder.num_samples, hop, first, size)))[:count])
    if progress is not None:
      progress(count)
  return np.concatenate(outputs).astype(np.float32), 1000.0 * centres / SAMPLE_RATE


def embed_clip(embedder, audio, hop_seconds: float = HOP_SECONDS, batch_size: int = BATCH_SIZE) -> np.ndarray:
  """The clip embedding ``(d,)`` float32 of audio of any length: the mean of `embed_frames`'s embeddings."""
  return embed_frames(embedder, audio, hop_seconds, batch_size)[0].mean(axis=0)


def output_names(stem: str, timestamps: bool, npz: bool) -> list[str]:
  """The files (or ``.npz`` keys) one input writes."""
  if npz:
    return [stem] + [f"{stem}_timestamps"] * timestamps
  return [f"{stem}.npy"] + [f"{stem}.timestamps.npy"] * timestamps


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--checkpoint", default=None,
                      help="a training workdir or an exported model; the shipped model by default")
  parser.add_argument("--step", type=int, default=None, help="a checkpointed step; the latest by default")
  parser.add_argument("--layer", default="conv", choices=("conv", "fc6", "fc7"),
                      help="conv: pooled convolutional features (what the main job probes); fc6 per patch; fc7")
  parser.add_argument("--timestamps", action="store_true",
                      help="write the frame embeddings (T, d) and their times in ms, not the clip's mean")
  parser.add_argument("--hop", type=float, default=HOP_SECONDS, help="seconds between window centres")
  parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="windows per call of the model")
  output = parser.add_mutually_exclusive_group()
  output.add_argument("--out", default=".", help="directory for the .npy files")
  output.add_argument("--npz", default=None, help="one .npz file for every input's arrays instead")
  parser.add_argument("audio", nargs="+", help="audio files (WAV, FLAC, OGG, MP3, ...), any rate and channels")
  args = parser.parse_args(argv)
  if args.batch_size < 1:
    parser.error(f"--batch-size must be at least 1, got {args.batch_size}.")
  try:
    hop = hop_samples(args.hop)
  except ValueError as e:
    parser.error(f"--hop: {e}")
  stems = [os.path.splitext(os.path.basename(path))[0] for path in args.audio]
  owners = {}
  for path, stem in zip(args.audio, stems):
    for name in output_names(stem, args.timestamps, args.npz is not None):
      if name in owners:
        parser.error(f"{owners[name]} and {path} would both write {name}; embed them in two calls.")
      owners[name] = path

  from tqdm import auto as tqdm  # pylint: disable=g-import-not-at-top
  try:
    embedder = load_embedder(args.checkpoint, args.step, args.layer)
  except (FileNotFoundError, ValueError) as e:
    raise SystemExit(f"error: {e}") from None
  if args.npz is None:
    os.makedirs(args.out, exist_ok=True)
  arrays, failed = {}, 0
  for path, stem in zip(tqdm.tqdm(args.audio, desc="files", unit="file", dynamic_ncols=True), stems):
    try:
      audio = audio_io.read_audio(path)
      with tqdm.tqdm(total=len(window_centres(len(audio), hop)), desc=stem, unit="window",
                     leave=False, dynamic_ncols=True) as bar:
        frames, timestamps = embed_frames(embedder, audio, args.hop, args.batch_size, bar.update)
    except (OSError, ValueError) as e:
      print(f"error: {e}" if path in str(e) else f"error: {path}: {e}", file=sys.stderr)
      failed += 1
      continue
    values = [frames, timestamps] if args.timestamps else [frames.mean(axis=0)]
    names = output_names(stem, args.timestamps, args.npz is not None)
    if args.npz is None:
      for name, value in zip(names, values):
        np.save(os.path.join(args.out, name), value)
      where = os.path.join(args.out, names[0])
    else:
      arrays.update(zip(names, values))
      where = f"{args.npz}[{names[0]}]"
    print(f"{path} -> {where} {values[0].shape} (step {embedder.step})")
  if args.npz is not None and arrays:
    os.makedirs(os.path.dirname(args.npz) or ".", exist_ok=True)
    tmp = args.npz + ".tmp"
    with open(tmp, "wb") as f:
      np.savez(f, **arrays)
    os.replace(tmp, args.npz)
  if failed:
    print(f"error: {failed} of {len(args.audio)} files could not be embedded (above); the others were written.",
          file=sys.stderr)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
