"""Text sources: embedded corpora (installed from PyPI) and local .jsonl / .txt files."""

from mixce.data.embedded import load_texts

__all__ = ["load_texts"]
