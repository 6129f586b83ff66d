"""Downstream evaluation of frozen embeddings, separate from training.

  embeddings  frozen CFN embeddings of notes from an Orbax checkpoint (or an
              untrained CFN, or log-mel statistics), computed once and cached.
  probes      the paper's 3-layer MLP and a linear probe, trained with optax on
              N labelled notes; tasks family, instrument and pitch.
"""
