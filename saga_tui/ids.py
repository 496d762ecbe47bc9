"""Every spelling of a saga id, read as the one the query API searches by.

People paste ids from many places: the 32 hex digits the database stores
(``0503a01c3b2748c39d73e9ac2fd8c849``), upper case, braces (``{...}``), ``urn:uuid:...``,
or the start of any of them. :func:`id_prefix` turns each into the lower-case, dashed
form (``0503a01c-3b27``) that the query API matches by prefix.
"""

from __future__ import annotations

import re

_HEX = re.compile(r"[0-9a-f]*")
_DASHES = (8, 12, 16, 20)


def id_prefix(text: str) -> str | None:
    """The dashed lower-case prefix ``text`` spells, or None when it is not (part of) an id."""
    word = text.strip().lower()
    if word.startswith("urn:uuid:"):
        word = word[len("urn:uuid:") :]
    if word.startswith("{"):
        word = word[1:]
    if word.endswith("}"):
        word = word[:-1]
    digits = word.replace("-", "")
    if not digits or len(digits) > 32 or not _HEX.fullmatch(digits):
        return None
    # Dashes, where given, must stand where a UUID has them.
    if "-" in word and not _dashed(digits.ljust(32, "0")).startswith(word):
        return None
    return _dashed(digits)


def _dashed(digits: str) -> str:
    parts = []
    last = 0
    for cut in _DASHES:
        if len(digits) <= cut:
            break
        parts.append(digits[last:cut])
        last = cut
    parts.append(digits[last:])
    return "-".join(parts)


def looks_like_id(text: str) -> bool:
    """True when ``text`` is written as a whole id (any spelling), not just a prefix."""
    found = id_prefix(text)
    return found is not None and len(found) == 36
