"""Networks for the permutation pretext task: the Context Free Network (CFN) and its backbones.

- `cfn`: the CFN (Noroozi & Favaro 2016), one backbone shared by every patch.
- `alexnet`: the AlexNet backbone (Krizhevsky et al. 2012) and its sizes.
- `resnet`: a small ResNet backbone (He et al. 2016) and its sizes.
- `efficientnet`: EfficientNet-B0 (Tan & Le 2019), the peer method's encoder.
- `sampling`: the contrastive peer objectives' network (`sampling.SamplingNet`).

`SIZES` names the presets a config picks (``config.model.size``); `build`
makes the CFN for one of them, `from_config` the CFN of a config. The peer
objectives' encoder is any of `ENCODERS`: the CFN's backbones on whole clips,
or EfficientNet (`sampling_from_config`).
"""

from __future__ import annotations

from shuffle_learn import _checks
from shuffle_learn.models import alexnet
from shuffle_learn.models import cfn
from shuffle_learn.models import efficientnet
from shuffle_learn.models import resnet
from shuffle_learn.models import sampling

# The presets by the name used in configs (``model.size``); the size's type picks the backbone.
SIZES: dict[str, cfn.BackboneSize] = {
    "tiny": alexnet.TINY,
    "small": alexnet.SMALL,
    "small_bands": alexnet.SMALL_BANDS,
    "paper": alexnet.PAPER,
    "resnet_small": resnet.RESNET_SMALL,
    "resnet_tiny": resnet.RESNET_TINY,
}

# The encoders of the contrastive peer objectives (``config.model.size``):
# the CFN's AlexNet backbones, applied to the whole clip, and EfficientNet.
ENCODERS: dict[str, sampling.Encoder] = {
    **{name: size for name, size in SIZES.items() if isinstance(size, alexnet.AlexNetSize)},
    "efficientnet_b0": efficientnet.B0,
    "efficientnet_tiny": efficientnet.TINY,
}


def build(size_name: str, *, num_outputs: int, normalize_patches: bool) -> cfn.CFN:
  """The CFN of the preset ``SIZES[size_name]``.

  Args:
    size_name: a key of `SIZES`.
    num_outputs: head width (``n`` scores or ``k`` logits, see `cfn.CFN`).
    normalize_patches: standardise each patch before the backbone.

  Returns:
    An unbound `cfn.CFN`.
  """
  _checks.check_choice("size_name", size_name, SIZES)
  return cfn.CFN(SIZES[size_name], num_outputs=num_outputs, normalize_patches=normalize_patches)


def from_config(config, num_outputs: int) -> cfn.CFN:
  """The CFN of ``config.model``: `build` of ``config.model.size`` and ``config.model.normalize_patches``.

  Args:
    config: an experiment config (``ml_collections.ConfigDict``), checked by
      `shuffle_learn.config.validate`.
    num_outputs: head width, the pretext task's ``num_outputs``.
  """
  return build(config.model.size, num_outputs=num_outputs, normalize_patches=config.model.normalize_patches)


def sampling_from_config(config) -> sampling.SamplingNet:
  """The peer objectives' network of ``config.model.size`` (a key of `ENCODERS`)."""
  _checks.check_choice("size_name", config.model.size, ENCODERS)
  return sampling.SamplingNet(ENCODERS[config.model.size])
