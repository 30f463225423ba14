"""Unified social credit code (统一社会信用代码, GB 32100-2015): format and check character."""

from __future__ import annotations

# The code's alphabet leaves out I, O, S, V and Z so that they are never misread.
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def check_character(first17: str) -> str:
    total = sum(ALPHABET.index(ch) * w for ch, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def credit_code_problem(code: str) -> str | None:
    """Why `code` is not a valid unified social credit code, or None when it is."""
    if len(code) != 18:
        return f"must be 18 characters, got {len(code)}"
    bad = [ch for ch in code if ch not in ALPHABET]
    if bad:
        return f"has characters outside the code alphabet: {''.join(sorted(set(bad)))}"
    expected = check_character(code[:17])
    if code[17] != expected:
        return f"check character is {code[17]}, expected {expected}"
    return None


def with_check_character(first17: str) -> str:
    """Complete a 17-character body with its check character (used by examples and the demo)."""
    return first17 + check_character(first17)
