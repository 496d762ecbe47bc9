"""The one place secrets are masked: passwords in database URLs, in text and in logs.

Every path that shows a database URL or an exception's text (command-line errors, the
dashboard's toasts and titles, stored errors, engine logs) goes through
:func:`mask_secrets` (free text) or :func:`mask_url` (a string known to be a URL).
"""

from __future__ import annotations

import logging
import re

MASK = "***"

# ``scheme://user:password@``: the password runs to the token's LAST ``@`` (an unescaped
# ``@`` or ``/`` in a password must not leave its tail visible; masking too much is safe).
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^\s:/@]*:)(\S+)(@[^\s@]*)")
# libpq keyword strings and URL query parameters: ``password=secret``, ``?password=x&``.
_KEYWORD_PASSWORD = re.compile(
    r"(\bpassword\s*=\s*)('[^']*'|[^\s&;,)]+?(?=:?(?:[\s&;,)]|$)))", re.IGNORECASE
)


def mask_secrets(text: str) -> str:
    """``text`` with every URL password (``scheme://user:secret@``) and ``password=`` masked."""
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\1{MASK}\3", text)
    if "assword" in text or "ASSWORD" in text:
        text = _KEYWORD_PASSWORD.sub(rf"\1{MASK}", text)
    return text


def mask_url(url: str) -> str:
    """A database URL as shown to people: its password masked, however the URL is written.

    Unlike :func:`mask_secrets` this also holds for a URL that does not parse (a user
    name with a space, an unescaped ``@`` in the password): everything between the first
    ``:`` of the user part and the last ``@`` before the query is masked.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return mask_secrets(url)
    before_query, q, query = rest.partition("?")
    at = before_query.rfind("@")
    if at >= 0:
        user, colon, _password = before_query[:at].partition(":")
        if colon:
            before_query = f"{user}:{MASK}{before_query[at:]}"
    return mask_secrets(f"{scheme}{sep}{before_query}{q}{query}")


class MaskingFilter(logging.Filter):
    """Masks secrets in a record's message and traceback before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record with its text masked; never drops one."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as usual
            return True
        record.msg = mask_secrets(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_secrets(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_secrets(record.stack_info)
        return True


_FILTER = MaskingFilter()


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` whose records have their secrets masked (for every handler)."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


class MaskingFormatter(logging.Formatter):
    """A formatter whose whole output has its secrets masked (the command line's handler)."""

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record, secrets masked."""
        return mask_secrets(super().format(record))
