"""Byte rates as people write them: ``500k``, ``10M``, ``1.5MiB/s``."""

from __future__ import annotations

import re

from ripstream.downloader.exceptions import ConfigError

__all__ = ["parse_rate"]

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(i?[bB]?)?(?:/s)?\s*$")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_rate(text: str | float | int | None) -> float | None:
    """Parse a byte rate such as ``10M``, ``512k``, ``1.5MiB/s`` or a plain number of bytes/s.

    :returns: bytes per second, or ``None`` for no limit (``None``, ``0``, ``""``).
    :raises ConfigError: when the text is not a rate.
    """
    if text is None or text in ("", 0):
        return None
    if isinstance(text, int | float) and not isinstance(text, bool):
        if not text >= 0:  # also refuses NaN, which compares false to everything
            raise ConfigError(f"rate must be positive, got {text}", field="rate", value=text)
        return float(text)
    match = _RATE.match(str(text))
    if not match:
        raise ConfigError(
            f"rate {text!r} is not a rate like 500k, 10M or 1G (bytes per second)",
            field="rate",
            value=text,
        )
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    return value or None
