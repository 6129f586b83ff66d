"""The ranking library imports nothing of the `train` extra: `pip install shuffle_learn` is enough for it.

The bare install itself (built, installed into an empty virtual environment,
running the README's ranking example) is checked by
tools/check_light_install.py, `make light`.
"""

import json
import os
import subprocess
import sys

import numpy as np

# The import names of setup.cfg's `train` and `tfds` extras.
TRAINING_MODULES = ("flax", "optax", "tensorflow_datasets", "grain", "orbax", "chex", "einops", "ml_collections",
                    "tqdm", "pretty_midi", "tensorboardX", "matplotlib", "PIL", "sklearn", "soundfile", "soxr",
                    "tensorflow")

_PROGRAM = """
import json, sys
import jax.numpy as jnp
from shuffle_learn import ranking
ranks = ranking.soft_rank(jnp.array([[0.3, -1.0, 2.0, 0.5]]), regularization_strength=1.0)
print(json.dumps({"ranks": ranks.tolist(), "modules": sorted({name.split(".")[0] for name in sys.modules})}))
"""


def test_ranking_imports_no_training_module():
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  result = subprocess.run([sys.executable, "-c", _PROGRAM], cwd=repo, capture_output=True, text=True, check=False,
                          timeout=300)
  assert result.returncode == 0, result.stderr
  output = json.loads(result.stdout.splitlines()[-1])
  np.testing.assert_allclose(output["ranks"], [[2.37, 1.07, 4.0, 2.57]], atol=0.005)
  imported = sorted(set(TRAINING_MODULES) & set(output["modules"]))
  assert not imported, f"importing shuffle_learn.ranking imported {imported}"
