"""Names shared by the kinds and their configuration checks: how two display names are
compared (ignoring case, spacing and Unicode form), and the config key an imported
object gets from its name."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Set

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def normal_name(name: str) -> str:
    """The form under which two display names count as the same."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def import_key(name: str, taken: Set[str], fallback: str) -> str:
    """A config key for an imported object named `name`: its ASCII slug (or `fallback`),
    with `-2`, `-3`, ... added until no key in `taken` has it."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:56] or fallback
    base = text if KEY_PATTERN.match(text) else fallback
    key, n = base, 2
    while key in taken:
        key = f"{base[:60]}-{n}"
        n += 1
    return key
