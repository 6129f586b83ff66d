"""The papers' Table I, Tables 5 and 6 and Fig. 2: every pretext loss and every baseline at N = 500, 1000, 2000.

Command:
  python -m experiments.nsynth --config experiments/configs/losses.py --workdir results/losses

Pre-trains the CFN of `nsynth.get_table_config` (the `small` CFN, sigma 1.0,
10 frequency bands, otherwise `default.py`) with each of the
four losses (Perturbed F-Y, Fast Soft Ranking, MSE, and Fixed Permutation: a
classification over 100 permutations, as in the papers' Table I), then probes
each embedding, the untrained CFN, log-mel statistics and the CFN trained
from scratch on the labels (`supervised`) with N = 1000 (Table I), 500
(Table 5) and 2000 labelled notes, 3 seeds each; results.png plots every task
against N (Fig. 2). Smaller than the papers' Table 6 (N = 5000) to fit a
2-core CPU: one full-batch 3-layer MLP fit on 5000 notes of 1,280 features
took 55-65 s against 11-13 s at N = 1000 (measured with another job on the
cores), 9 fits per method, and the `supervised` baseline trains the whole CFN
per fit. The pool the N notes are drawn from holds
6,000 notes. `--config.eval.n_train=(1000,)` gives Table I alone;
`--config.eval.n_train='(5000,)'` gives Table 6 (run it in a workdir holding
copies of this run's `pretrain/` and `embeddings/` to reuse them;
docs/results/README.md has it without `supervised`).
"""

from experiments.configs import nsynth


def get_config():
  config = nsynth.get_table_config()
  config.methods = ("perturbed_fy", "fast_soft_rank", "mse", "fixed_permutation")
  config.baselines = ("random_embedding", "logmel_baseline", "supervised")
  config.eval.n_train = (1000, 500, 2000)
  config.eval.pool_examples = 6000
  return config
