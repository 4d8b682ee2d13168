"""Metrics of the GPT-2 track (paper section 4.2 and appendix F; docs/PROTOCOL.md).

- :mod:`~mixce.metrics.diversity`: n-gram diversity, distinct-n, word length;
- :mod:`~mixce.metrics.features`: GPT-2 (MAUVE), MiniLM and SimCSE featurizers, feature files;
- :mod:`~mixce.metrics.mauve_score`: MAUVE from features, empty-text accounting;
- :mod:`~mixce.metrics.coherence`: prompt/continuation cosine similarity;
- :mod:`~mixce.metrics.fragments`: fragments for controlled MAUVE and coherence;
- :mod:`~mixce.metrics.perplexity`: per-token NLL and perplexity.

Submodules are imported on use (the featurizers pull in transformers).
"""

from __future__ import annotations
