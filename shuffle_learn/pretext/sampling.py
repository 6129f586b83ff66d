"""The contrastive peer objectives: COLA's clip-level, the frame-level and the pitch-shift strategies.

The pre-training objectives of Kuroyanagi et al. 2022 (config ``pretext.loss``,
`LOSSES`), on the same clips and trainer as the permutation objectives:

- ``cola``: L_clip (Eq. 2; COLA, Saeed et al. 2021): two segments of the same
  clip are positives, the other clips' positive segments of the batch are the
  negatives;
- ``frame``: L_frame (Eqs. 4-5): within every segment, each frame's positives
  are the frames at most ``frame_m`` away (the paper's m = 0: itself), the
  other frames of the segment are its negatives;
- ``pitch``: L_pitch (Eq. 6): the pitch head's per-frame difference between a
  pitch-shifted copy of the anchor and the anchor regresses the shift;
- ``multi_sampling``: L_clip + ``alpha`` L_frame + ``beta`` L_pitch (Eq. 7;
  the paper's alpha = beta = 1; ``beta = 0`` and ``alpha = 0`` give the
  ablation rows of its Table 1).

One step (`SamplingPretext.train_loss`), all on device:

    clips (batch, samples) -> STFT magnitudes of the whole clip
      -> anchor x and positive x': ``segment_frames`` frames each (the paper's
         96 frames, 960 ms of hops), at independent uniform offsets
      -> x_hat: x pitch-shifted by a ratio drawn uniformly in
         [min_shift, max_shift] per example (0.8-1.2, as the paper says), by
         resampling the magnitudes along frequency
         (`contrastive.shift_spectrum`) before the mel filterbank
      -> log-mel, standardised per segment -> `SamplingNet.frames`: h
      -> similarities (bilinear, Eqs. 1 and 3, or cosine over temperature
         0.2, Eq. 8) and the losses of `contrastive`.

The pitch shift is done on the spectrogram rather than by a phase vocoder on
the host: it is exact for the partials' frequencies (a partial at bin k moves
to bin k * ratio, tested), keeps the whole step on device and jitted, and
needs no extra package; what it changes besides pitch is the spectral envelope
(formants move with the partials), as a resampling pitch shifter's does.

Only the segments the weighted losses need are encoded: two per clip for
``cola`` and ``frame``, three with the pitch-shifted one. The frame loss
averages over the encoded segments (Eq. 5 with x_hat when it is encoded). The
step's metric is ``clip_accuracy``, the contrastive top-1: the fraction of
anchors whose most similar positive in the batch is their own (chance 1 /
batch).

Deviations from the paper, all stated in the docs: we regress the shift in
semitones, ``12 log2(ratio)``, rather than the ratio, so that no shift is 0
(`contrastive.pitch_loss`); the public code of the paper uses loss weights of
0.01 and small shifts, the paper 1.0 and 0.8-1.2, which we follow.

References:
  Kuroyanagi, Hayashi, Takeda, Toda. Self-Supervised Learning Method Using
  Multiple Sampling Strategies for General-Purpose Audio Representation.
  ICASSP 2022.
  Saeed, Grangier, Zeghidour. Contrastive Learning of General-Purpose Audio
  Representations. ICASSP 2021.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from shuffle_learn import _checks
from shuffle_learn.data import frontend
from shuffle_learn.data import schema
from shuffle_learn.models import sampling as sampling_model
from shuffle_learn.pretext import audio as audio_input
from shuffle_learn.pretext import contrastive

LOSSES = ("cola", "frame", "pitch", "multi_sampling")
SIMILARITIES = ("bilinear", "cosine")
# The ``config.pretext`` fields the peer objectives read.
FIELDS = ("alpha", "beta", "similarity", "temperature", "frame_m", "min_shift", "max_shift", "segment_frames")


@dataclasses.dataclass(frozen=True)
class SegmentsInput:
  """Clips -> log-mel segments: the peer objectives' front end (the paper's 64-bin log-mel, 96 frames).

  Attributes:
    kind: the front end; only ``"log_mel"`` (config ``features.kind``).
    seconds: clip length fed to the device (``features.seconds``).
    num_mel_bins, fft_size: of the log-mel (`frontend.log_mel_spectrogram`).
    normalization: ``"example"`` standardises every segment's log-mel (mean
      and std over frames and bins), ``"none"`` keeps log magnitudes.
    segment_frames: frames per segment (``pretext.segment_frames``).
  """

  kind: str = "log_mel"
  seconds: float = 2.0
  num_mel_bins: int = 64
  fft_size: int = 1024
  normalization: str = "example"
  segment_frames: int = 96
  raw_key: ClassVar[str] = schema.RAW_KEYS["audio"]
  config_fields: ClassVar[dict[str, str]] = {
      "kind": "features.kind", "seconds": "features.seconds", "num_mel_bins": "features.num_mel_bins",
      "fft_size": "features.fft_size", "normalization": "features.normalization",
      "segment_frames": "pretext.segment_frames"}
  sample_rate: ClassVar[int] = schema.SAMPLE_RATE

  def __post_init__(self):
    if self.kind != "log_mel":
      raise ValueError(f"kind must be 'log_mel' for the contrastive objectives, got {self.kind!r}.")
    _checks.check_number("seconds", self.seconds, 0.0, strict=True)
    _checks.check_int("num_mel_bins", self.num_mel_bins, 1)
    _checks.check_int("fft_size", self.fft_size, 400)
    _checks.check_choice("normalization", self.normalization, audio_input.NORMALIZATIONS)
    _checks.check_int("segment_frames", self.segment_frames, 1)
    frames = self.clip_frames
    if frames < self.segment_frames:
      raise ValueError(f"seconds must hold a segment of {self.segment_frames} frames, got {self.seconds!r} s "
                       f"({frames} frames).")

  @property
  def num_samples(self) -> int:
    return int(round(self.seconds * self.sample_rate))

  @property
  def clip_frames(self) -> int:
    return frontend.num_frames(self.num_samples, sample_rate=self.sample_rate) if self.num_samples >= 400 else 0

  def magnitudes(self, audio: jax.Array) -> jax.Array:
    """``(batch, samples)`` -> STFT magnitudes ``(batch, frames, fft_size // 2 + 1)`` of the first ``seconds``."""
    audio = jnp.asarray(audio, jnp.float32)[..., :self.num_samples]
    return frontend.stft_magnitude(audio, sample_rate=self.sample_rate, fft_size=self.fft_size)

  def log_mel(self, magnitudes: jax.Array) -> jax.Array:
    """Magnitudes ``(..., frames, bins)`` -> the log-mel ``(..., frames, num_mel_bins)``, standardised if asked."""
    spec = frontend.log_mel_from_magnitude(magnitudes, sample_rate=self.sample_rate, num_mel_bins=self.num_mel_bins)
    return audio_input.standardize(spec) if self.normalization == "example" else spec

  def spectrogram(self, audio: jax.Array) -> jax.Array:
    """A whole clip's log-mel ``(batch, frames, num_mel_bins)``: the encoder's input downstream."""
    return self.log_mel(self.magnitudes(audio))

  def dummy(self, batch_size: int = 1) -> np.ndarray:
    return np.zeros((batch_size, self.num_samples), np.float32)

  def host(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
    """The clip's samples as fed to the device, float32, zero-padded to ``seconds`` if shorter."""
    audio = np.asarray(batch[self.raw_key][:, :self.num_samples], np.float32)
    if audio.shape[1] < self.num_samples:
      audio = np.pad(audio, ((0, 0), (0, self.num_samples - audio.shape[1])))
    return audio


@dataclasses.dataclass(frozen=True)
class SamplingObjective:
  """The weights and settings of a peer objective (`LOSSES`); see the module docstring.

  Attributes:
    loss: one of `LOSSES`.
    alpha, beta: ``multi_sampling``'s weights of L_frame and L_pitch (>= 0).
    similarity: ``"bilinear"`` or ``"cosine"``.
    temperature: the cosine similarity's (> 0).
    frame_m: positives of a frame are the frames at most this far (>= 0).
    min_shift, max_shift: the pitch-shift ratio's range, 0 < min <= max.
  """

  loss: str
  alpha: float = 1.0
  beta: float = 1.0
  similarity: str = "bilinear"
  temperature: float = contrastive.COSINE_TEMPERATURE
  frame_m: int = 0
  min_shift: float = 0.8
  max_shift: float = 1.2

  def __post_init__(self):
    _checks.check_choice("loss", self.loss, LOSSES)
    _checks.check_number("alpha", self.alpha, 0.0)
    _checks.check_number("beta", self.beta, 0.0)
    _checks.check_choice("similarity", self.similarity, SIMILARITIES)
    _checks.check_number("temperature", self.temperature, 0.0, strict=True)
    _checks.check_int("frame_m", self.frame_m, 0)
    _checks.check_number("min_shift", self.min_shift, 0.0, strict=True)
    if _checks.check_number("max_shift", self.max_shift, 0.0, strict=True) < self.min_shift:
      raise ValueError(f"max_shift must be >= min_shift={self.min_shift!r}, got {self.max_shift!r}.")

  @property
  def weights(self) -> tuple[float, float, float]:
    """The weights of (L_clip, L_frame, L_pitch)."""
    return {"cola": (1.0, 0.0, 0.0), "frame": (0.0, 1.0, 0.0), "pitch": (0.0, 0.0, 1.0),
            "multi_sampling": (1.0, float(self.alpha), float(self.beta))}[self.loss]


@dataclasses.dataclass(frozen=True)
class SamplingPretext:
  """A peer objective on clips: what the trainer asks of a pretext (see `shuffle_learn.pretext.Pretext`)."""

  input: SegmentsInput
  objective: SamplingObjective
  metric: ClassVar[str] = "clip_accuracy"

  def chance(self, batch_size: int) -> float:
    """The clip accuracy of random embeddings: 1 / batch."""
    return 1.0 / batch_size

  def make_model(self, config) -> sampling_model.SamplingNet:
    from shuffle_learn import models  # pylint: disable=g-import-not-at-top
    return models.sampling_from_config(config)

  def init_params(self, model, key: jax.Array):
    return model.init(key, jnp.zeros((1, self.input.segment_frames, self.input.num_mel_bins)), train=False)

  def _segments(self, raw: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    """``(segments (k, batch, frames, mel), ratios (batch,) or None)``: anchor, positive [, pitch-shifted anchor]."""
    offset_key, ratio_key = jax.random.split(key)
    magnitudes = self.input.magnitudes(raw)
    batch, length = magnitudes.shape[0], self.input.segment_frames
    offsets = jax.random.randint(offset_key, (2, batch), 0, magnitudes.shape[1] - length + 1)
    cut = jax.vmap(lambda m, o: jax.lax.dynamic_slice_in_dim(m, o, length, axis=0))
    segments = [cut(magnitudes, offsets[0]), cut(magnitudes, offsets[1])]
    ratios = None
    if self.objective.weights[2]:
      ratios = jax.random.uniform(ratio_key, (batch,), minval=self.objective.min_shift,
                                  maxval=self.objective.max_shift)
      segments.append(contrastive.shift_spectrum(segments[0], ratios))
    return self.input.log_mel(jnp.stack(segments)), ratios

  def _similarity(self, a: jax.Array, b: jax.Array, w: jax.Array) -> jax.Array:
    if self.objective.similarity == "cosine":
      return contrastive.cosine_similarity(a, b, self.objective.temperature)
    return contrastive.bilinear_similarity(a, b, w)

  def _loss(self, model, params, segments: jax.Array, ratios, train: bool, rngs: dict) -> tuple[jax.Array, dict]:
    k, batch = segments.shape[:2]
    h = model.apply(params, segments.reshape((k * batch,) + segments.shape[2:]), train=train,
                    method=sampling_model.SamplingNet.frames, rngs=rngs)
    h = h.reshape((k, batch) + h.shape[1:])  # (k, batch, T', features)
    weights = self.objective.weights
    variables = params["params"]
    clip = self._similarity(h[0].mean(axis=1), h[1].mean(axis=1), variables["w_clip"])
    metrics = {"clip_accuracy": jnp.mean((jnp.argmax(clip, axis=-1) == jnp.arange(batch)).astype(jnp.float32))}
    loss = 0.0
    if weights[0]:
      metrics["clip_loss"] = contrastive.clip_loss(clip)
      loss += weights[0] * metrics["clip_loss"]
    if weights[1]:
      frames = h.reshape((k * batch,) + h.shape[2:])
      metrics["frame_loss"] = contrastive.frame_loss(
          self._similarity(frames, frames, variables["w_frame"]), self.objective.frame_m)
      loss += weights[1] * metrics["frame_loss"]
    if weights[2]:
      pitch = model.apply(params, h[jnp.array([2, 0])], method=sampling_model.SamplingNet.pitch)
      metrics["pitch_loss"] = contrastive.pitch_loss(pitch[0], pitch[1], ratios)
      loss += weights[2] * metrics["pitch_loss"]
    return loss, metrics

  def train_loss(self, model, raw: jax.Array, key: jax.Array):
    """``params -> (loss, metrics)`` of one training step; ``key`` draws the segments, shifts and dropout."""
    segment_key, dropout_key = jax.random.split(key)
    segments, ratios = self._segments(raw, segment_key)
    return lambda params: self._loss(model, params, segments, ratios, True, {"dropout": dropout_key})

  def train_metrics(self, aux: dict) -> dict:
    return aux

  def eval_sums(self, model, params, raw: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
    """The batch's summed ``loss`` and ``clip_accuracy`` (its mean times the batch), for `pretext_accuracy`."""
    segments, ratios = self._segments(raw, key)
    loss, metrics = self._loss(model, params, segments, ratios, False, {})
    batch = raw.shape[0]
    return {"loss": loss * batch, "clip_accuracy": metrics["clip_accuracy"] * batch}


def from_config(config, path: str = "config") -> SamplingPretext:
  """The peer pretext of a pre-training config (``pretext.loss`` in `LOSSES`); errors name the field."""
  kwargs = {name: _checks.get(config, field, path) for name, field in SegmentsInput.config_fields.items()}
  with _checks.prefixed(path, SegmentsInput.config_fields):
    input_ = SegmentsInput(**kwargs)
  fields = [f for f in FIELDS if f != "segment_frames"]
  kwargs = {name: _checks.get(config, f"pretext.{name}", path) for name in fields}
  with _checks.prefixed(f"{path}.pretext"):
    objective = SamplingObjective(loss=_checks.get(config, "pretext.loss", path), **kwargs)
  return SamplingPretext(input_, objective)
