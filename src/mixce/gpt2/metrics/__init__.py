"""Metrics of the GPT-2 track (paper section 4.2 and appendix F; docs/PROTOCOL.md).

- :mod:`~mixce.gpt2.metrics.diversity`: n-gram diversity, distinct-n, self-BLEU, word length;
- :mod:`~mixce.gpt2.metrics.features`: GPT-2 (MAUVE), MiniLM and SimCSE featurizers;
- :mod:`~mixce.gpt2.metrics.mauve_score`: MAUVE from features;
- :mod:`~mixce.gpt2.metrics.coherence`: prompt/continuation cosine similarity;
- :mod:`~mixce.gpt2.metrics.scoring`: what the metric rules score, for human and model texts;
- :mod:`~mixce.gpt2.metrics.fragments`, :mod:`~mixce.gpt2.metrics.controlled`: controlled
  MAUVE and coherence;
- :mod:`~mixce.gpt2.metrics.perplexity`: per-token NLL and perplexity.

Submodules are imported on use (the featurizers pull in transformers).
"""

from __future__ import annotations
