"""Q: the paper's neural bigram LM, with a BOS input that predicts the first token."""

from __future__ import annotations

import torch
from torch import nn


class NeuralBigram(nn.Module):
    """Embedding(V + 1, d) -> Linear(d, d) -> ReLU -> Dropout -> Linear(d, V); inputs
    ``0 .. V-1`` are tokens, ``V`` is BOS (rows in the order of the data's count matrices)."""

    def __init__(self, vocab_size: int, hidden_size: int, dropout: float) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size + 1, hidden_size)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, hidden_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, vocab_size),
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Next-token logits for token ids (BOS = V)."""
        return self.mlp(self.embedding(inputs))

    def from_onehot(self, onehot: torch.Tensor) -> torch.Tensor:
        """Next-token logits for (straight-through) one-hot tokens, gradients flowing through."""
        return self.mlp(onehot @ self.embedding.weight[: self.vocab_size])

    def transition_logits(self) -> torch.Tensor:
        """(V + 1) x V logits: one row per input (tokens, then BOS)."""
        return self.mlp(self.embedding.weight)

    @torch.no_grad()
    def learned_matrix(self) -> torch.Tensor:
        """M' = softmax(f(E)) in eval mode (no dropout), (V + 1) x V."""
        was_training = self.training
        self.eval()
        m = torch.softmax(self.transition_logits(), dim=-1)
        self.train(was_training)
        return m
