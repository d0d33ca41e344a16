"""Log lines that user input cannot forge: every string argument of a record from this app's
loggers is escaped (CR, LF and other control characters written as ``\\n``, ``\\x00``...),
so one call writes one line whatever an email field or a path held."""

from __future__ import annotations

import logging

APP_LOGGER = "onboarding_app"
_ESCAPES = {i: f"\\x{i:02x}" for i in [*range(0x20), 0x7F]} | {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
_ESCAPES |= {0x2028: "\\u2028", 0x2029: "\\u2029", 0x85: "\\x85"}


def escape(value: object) -> object:
    """``value`` with control characters escaped when it is a string; anything else as is."""
    if isinstance(value, str):
        return value if value.isprintable() else value.translate(_ESCAPES)
    return value


class EscapeUserText(logging.Filter):
    """Escapes the string arguments of a record (the format string is the code's own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict):
            record.args = {key: escape(value) for key, value in record.args.items()}
        elif record.args:
            record.args = tuple(escape(value) for value in record.args)
        return True


_FILTER = EscapeUserText()


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with the escaping filter (a logger's filters apply to the
    records logged on it, not on its children, so each module's logger gets its own)."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
