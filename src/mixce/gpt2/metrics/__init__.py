"""Metrics of the GPT-2 track (paper section 4.2 and appendix F; docs/PROTOCOL.md).

- :mod:`~mixce.gpt2.metrics.diversity`: n-gram diversity, distinct-n, word length;
- :mod:`~mixce.gpt2.metrics.features`: GPT-2 (MAUVE), MiniLM and SimCSE featurizers, feature files;
- :mod:`~mixce.gpt2.metrics.mauve_score`: MAUVE from features, empty-text accounting;
- :mod:`~mixce.gpt2.metrics.coherence`: prompt/continuation cosine similarity;
- :mod:`~mixce.gpt2.metrics.fragments`: fragments for controlled MAUVE and coherence;
- :mod:`~mixce.gpt2.metrics.perplexity`: per-token NLL and perplexity.

Submodules are imported on use (the featurizers pull in transformers).
"""

from __future__ import annotations
