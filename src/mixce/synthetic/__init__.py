"""Synthetic bigram experiments (paper section 4.1): target P, data, neural bigram Q, objectives."""
