"""Small text helpers shared by the CLI, training and the notebook."""

from __future__ import annotations


def plural(count: int, word: str, many: str | None = None) -> str:
    """"1 epoch", "2 epochs", "0 epochs" (`many`: an irregular plural)."""
    return f"{count} {word if count == 1 else many or word + 's'}"
