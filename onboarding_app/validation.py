"""Small checks on query-string values, shared by the contact list and the feed."""

from __future__ import annotations

from typing import Any


def whole_number(raw: Any, low: int, high: int) -> int:
    """The whole number ``raw`` stands for, between ``low`` and ``high``; ValueError with a
    sentence for people otherwise."""
    try:
        number = int(str(raw))
    except ValueError:
        raise ValueError("Must be a whole number.") from None
    if not low <= number <= high:
        raise ValueError(f"Must be between {low} and {high}.")
    return number
