"""Metrics of the GPT-2 track (paper section 4.2 and appendix F; docs/PROTOCOL.md): diversity
(n-gram diversity, distinct-n, self-BLEU, word length), features (GPT-2, MiniLM and SimCSE
featurizers), mauve_score, coherence, scoring (what the metric rules score, for human and
model texts), fragments and controlled (controlled MAUVE and coherence), perplexity.
Submodules are imported on use (the featurizers pull in transformers).
"""
