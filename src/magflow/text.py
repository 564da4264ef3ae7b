"""Text folding shared by the write side (search_text) and the read side (search terms)."""

from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    """Lower-case without diacritics: 'Școală' -> 'scoala', so searches ignore ă â î ș ț."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
