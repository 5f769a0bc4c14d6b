"""Checks of the fields of specs and training settings: every value from JSON, a URL or a widget is
checked here, with a message that names the field, says what it must be and quotes what was received."""

from __future__ import annotations

import math
import re
import reprlib
from dataclasses import fields
from typing import Any

from sharecore.core.text import forbidden_character

INPUT_NODE = "input"  # the node a use reads when its source is the model's input
# TensorFlow shapes, strides and seeds are int32 in places; bigger numbers only ever fail
# deep inside TensorFlow (or overflow float arithmetic in plan), so they are refused here.
MAX_INT = 2**31 - 1
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


class ShortRepr(reprlib.Repr):
    """A repr for error messages about untrusted data: bounded in length and depth."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother = 4, 80, 80
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = 12

    def repr_int(self, x: int, level: int) -> str:
        # repr() itself refuses ints of more than 4300 digits.
        return repr(x) if x.bit_length() <= 256 else f"<a whole number of {x.bit_length()} bits>"


short_repr = ShortRepr().repr


def fail(where: str, message: str, received: Any) -> ValueError:
    # A plain !r recursed without end on deeply nested input and copied a 10 MB string
    # into the message.
    return ValueError(f"{where}: {message} Received: {short_repr(received)}")


def check_name(where: str, value: Any) -> str:
    # fullmatch: with match, '$' also matches before a trailing newline, so 'W\n' slipped
    # through and later broke TensorFlow's node names.
    if not isinstance(value, str) or not _NAME.fullmatch(value) or value == INPUT_NODE:
        raise fail(
            where,
            "names must start with a letter, use only letters, digits and '_', "
            f"be at most 40 characters long and not be '{INPUT_NODE}'.",
            value,
        )
    return value


def check_text(where: str, value: Any, max_chars: int, multiline: bool) -> str:
    """A spec's name (one line) or description: a string of allowed characters, not too long."""
    if not isinstance(value, str) or len(value) > max_chars:
        raise fail(where, f"must be a string of at most {max_chars} characters.", value)
    found = forbidden_character(value, multiline=multiline)
    if found is None:
        return value
    position, character = found
    if "surrogate" in character:
        rule = (
            "must be text without lone surrogates (U+D800..U+DFFF), which no UTF-8 file, page or "
            "URL can hold (a JSON escape such as \\ud800 makes one)"
        )
    elif multiline:
        rule = (
            "may break lines with \\n and hold tabs, but no other control characters "
            "(U+0000..U+001F, U+007F..U+009F) or separators (U+2028, U+2029)"
        )
    else:
        rule = (
            "must be one line of printable text: no control characters (U+0000..U+001F, "
            "U+007F..U+009F), line breaks or separators (U+2028, U+2029)"
        )
    raise fail(where, f"{rule}; found {character} at position {position}. Remove it.", value)


def check_choice(where: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise fail(where, f"must be one of {', '.join(repr(c) for c in choices)}.", value)
    return value


def check_int(where: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(where, f"must be a whole number >= {minimum}.", value)
    if value < minimum:
        raise fail(where, f"must be >= {minimum}.", value)
    if value > MAX_INT:
        raise fail(where, f"must be <= {MAX_INT}, the largest whole number TensorFlow takes here.", value)
    return value


def check_whole(where: str, value: Any, example: str, bound: int | None = None) -> int:
    """A whole number of either sign (a rule's quarter turns or axis), at most `bound` from 0."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(where, f"must be a whole number, e.g. {example}.", value)
    if bound is not None and abs(value) > bound:
        raise fail(where, f"must be between {-bound} and {bound}.", value)
    return value


def check_shape(where: str, value: Any, minimum: int = 1, rank: tuple[int, int] = (1, 4)) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)):
        raise fail(where, "must be a list of whole numbers, e.g. [10, 5].", value)
    if not rank[0] <= len(value) <= rank[1]:
        raise fail(where, f"must have between {rank[0]} and {rank[1]} dimensions.", value)
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise fail(where, f"dimension {i} must be a whole number >= {minimum}.", value)
        if v > MAX_INT:
            raise fail(
                where, f"dimension {i} must be <= {MAX_INT}, the largest whole number TensorFlow takes here.", value
            )
    return tuple(value)


def check_keys(where: str, data: Any, cls: type, required: tuple[str, ...]) -> dict:
    if not isinstance(data, dict):
        raise fail(where, "must be a JSON object.", data)
    allowed = [f.name for f in fields(cls)]
    # key=str: a dict built in Python may mix str and int keys, which plain sorted() refuses.
    unknown = sorted(set(data) - set(allowed), key=str)
    if unknown:
        raise fail(where, f"unknown key(s) {short_repr(unknown)}; allowed keys are {allowed}.", sorted(data, key=str))
    missing = [k for k in required if k not in data]
    if missing:
        raise fail(where, f"missing required key(s) {missing}.", sorted(data, key=str))
    return data


def jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    return value


# ----------------------------------------------------------------------------- Rule


def parse_count(value: Any, where: str, example: str = "2000000") -> int:
    """A whole number >= 1 from a setting: an int, a float with no fraction, or text such as '2_000_000'.

    Raises:
        ValueError: "{where} must be a whole number >= 1, e.g. {example}. Received: ...".
    """
    number: Any = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and len(value) <= 30:
        try:
            number = int(value.strip())  # accepts 2_000_000 too
        except ValueError:
            number = None
    if number is None or number < 1:
        shown = value if not isinstance(value, str) else value[:40]
        raise ValueError(f"{where} must be a whole number >= 1, e.g. {example}. Received: {shown!r}")
    return number
