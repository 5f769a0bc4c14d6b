"""User text as data: which characters a spec's name and description may hold, and file names made from them.

A spec's name and description travel to places that give some characters a meaning: a
generated script's comments (where a line break ends the comment), a terminal (escape
sequences), a download's file name (path separators), UTF-8 files, pages and URLs (which
cannot hold a lone surrogate). This module says which characters are refused at the spec
boundary and turns text into a file name that is only ever a name. Plain Python: no
TensorFlow, no Streamlit.
"""

from __future__ import annotations

import re
import unicodedata

# Refused everywhere: C0 and C1 control characters (NUL, ESC for terminal escape sequences,
# CR, form feed, U+0085, ...), the Unicode line and paragraph separators, and lone surrogates,
# which no UTF-8 file, page or URL can hold (they made encoding fail deep inside Streamlit).
# A description may still break lines with "\n" and hold tabs.
_FORBIDDEN_IN_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_FORBIDDEN_IN_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")

# Every line break that some reader acts on: Python's tokenizer ends a comment only at \n and
# \r, but str.splitlines(), editors and CSV readers also break at these.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"

MAX_FILE_STEM = 64  # characters of user text kept in a file name
# Names Windows reserves for devices, with any extension.
_WINDOWS_DEVICES = frozenset({"CON", "PRN", "AUX", "NUL"} | {f"{d}{i}" for d in ("COM", "LPT") for i in range(10)})
_SUFFIX = re.compile(r"^[A-Za-z0-9._-]*$")


def forbidden_character(text: str, *, multiline: bool = False) -> tuple[int, str] | None:
    """The first character that `text` may not hold, as (position, why), or None.

    Args:
        text: a spec name (one line) or description.
        multiline: allow "\\n" and "\\t" (a description); a name allows neither.

    Returns:
        None if every character is allowed; else the position of the first one refused and
        a short reason naming it, e.g. ``(3, "the lone surrogate U+D800")``.
    """
    found = (_FORBIDDEN_IN_TEXT if multiline else _FORBIDDEN_IN_LINE).search(text)
    if found is None:
        return None
    code = ord(found.group())
    if 0xD800 <= code <= 0xDFFF:
        kind = "lone surrogate"
    elif code in (0x2028, 0x2029):
        kind = "separator"
    else:
        kind = "control character"
    return found.start(), f"the {kind} U+{code:04X}"


def safe_file_name(stem: str, suffix: str = "", default: str = "spec") -> str:
    """A download file name made from user text: `stem` cleaned, then `suffix`.

    Keeps ASCII letters, digits, '.', '_' and '-' (accented letters lose their accents),
    turns every other run of characters into one '_', cuts the stem to `MAX_FILE_STEM`
    characters and never yields an empty name, a name that starts with a dot or a '-', a
    path, or a Windows device name (CON, NUL, COM1, ...).

    Args:
        stem: user text, e.g. a spec's name.
        suffix: the app's own ending, e.g. ``"_history.csv"``; only [A-Za-z0-9._-].
        default: the stem used when nothing of `stem` is left.

    Returns:
        For example ``safe_file_name("../My spec: v2", ".json") == "My_spec_v2.json"``.

    Raises:
        ValueError: if `suffix` holds other characters (it is code's text, not the user's).
    """
    if not _SUFFIX.fullmatch(suffix):
        raise ValueError(f"suffix: must use only letters, digits, '.', '_' and '-'. Received: {suffix!r}")
    # NFKD splits 'é' into 'e' and a combining accent, so the ASCII filter keeps the 'e'.
    ascii_text = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_text)
    cleaned = re.sub(r"\.{2,}", ".", cleaned)  # no '..' anywhere, so nothing reads as a parent folder
    cleaned = cleaned[:MAX_FILE_STEM].strip("._-")  # no hidden file, no option-like '-x', no trailing dot
    if not cleaned:
        cleaned = default
    if cleaned.split(".")[0].upper() in _WINDOWS_DEVICES:
        cleaned = f"{default}_{cleaned}"
    return cleaned + suffix
