"""What a workspace's list is made of: the keys and ids that name workspaces and runs, run labels,
and the records the run store hands back (`RunInfo`, `StoredRun`, `SaveReport`).

Plain Python: `sharecore.runs.store.RunStore` keeps them; a front end checks a key or cleans a label
with these functions alone.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sharecore.core.text import NOT_IN_A_LINE

if TYPE_CHECKING:
    from sharecore.core.results import TrainResult

MAX_LABEL_CHARS = 80
# new_key() and run ids: secrets.token_urlsafe(18) is 24 characters of [A-Za-z0-9_-] (144 random bits).
_TOKEN_BYTES = 18
_TOKEN = re.compile(r"[A-Za-z0-9_-]{24}")  # what new_key() makes: workspace keys and run ids alike
# Control characters, line and paragraph separators and lone surrogates: a label is one line of text.
# Bidirectional embeddings, overrides and isolates: one left open in a label turns the text drawn after
# it (' · tied' in a legend, the rest of a message) backwards. Right-to-left text needs none of them.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


class UnknownRun(KeyError):
    """No run with this id is kept, or it is not in this workspace's list."""

    def __str__(self) -> str:
        # KeyError's own str() quotes its message as a repr.
        return str(self.args[0]) if self.args else "unknown run"


@dataclass(frozen=True)
class RunInfo:
    """One line of a workspace's list: what the compare page shows without loading a run."""

    id: str
    label: str
    pinned: bool
    created: float  # unix seconds the run was saved
    preset: str
    spec_name: str
    steps_done: int
    dataset: str
    final_loss: dict[str, float]  # variant -> last recorded training loss
    bytes: int  # what the run takes in the store
    can_continue: bool  # its state was kept, so it can be continued
    adopted: bool  # saved by another workspace and added to this list from a share link


@dataclass(frozen=True)
class StoredRun:
    """A kept run: its place in a list and the full `TrainResult`."""

    id: str
    # The workspace whose label and pin these are: the one asked for, or the one that saved it (whose saved label
    # it is when the asked workspace does not list the run, or the saver no longer does).
    workspace: str
    label: str
    pinned: bool
    created: float
    preset: str
    result: TrainResult
    problem: str | None = None  # why it opens without its state (an altered state cannot be continued), else None


@dataclass(frozen=True)
class SaveReport:
    """What `RunStore.save` (or `adopt`) did beyond keeping the run."""

    run_id: str
    evicted: tuple[str, ...] = ()  # labels of this workspace's runs removed to make room
    evicted_elsewhere: int = 0  # runs of other workspaces removed to keep the store under its size cap
    weights_dropped: bool = False  # kept without weights and state: it cannot be continued
    notes: tuple[str, ...] = ()  # one sentence for each thing above, ready to show


def is_key(text: object) -> bool:
    """Whether `text` has the form of a workspace key or a run id (what `new_key` makes)."""
    return isinstance(text, str) and _TOKEN.fullmatch(text) is not None


def new_key() -> str:
    """A new workspace key: 24 unguessable URL-safe characters."""
    return secrets.token_urlsafe(_TOKEN_BYTES)


def clean_label(label: Any, *, truncate: bool = False) -> str:
    """A run label as stored: one line of text, at most `MAX_LABEL_CHARS` characters.

    Control characters, separators and bidirectional overrides are removed and runs of spaces become one.
    What is left must hold a visible character (a letter, digit, mark of punctuation or symbol): a label
    of zero-width spaces or byte-order marks alone would be a blank line in every list and legend.

    Args:
        label: the user's text.
        truncate: cut a longer label to fit (ending in '…') instead of refusing it.

    Returns:
        The cleaned label.

    Raises:
        ValueError: if nothing visible is left, or (without `truncate`) the label is too long.
    """
    if not isinstance(label, str):
        raise ValueError(f"A run label must be text. Received: {type(label).__name__}")
    text = " ".join(NOT_IN_A_LINE.sub(" ", _BIDI_CONTROLS.sub("", label)).split())
    if not text:
        raise ValueError("A run label cannot be empty. Type a few words that say what this run tried.")
    if not any(unicodedata.category(char)[0] in "LNPS" for char in text):
        codes = ", ".join(f"U+{ord(char):04X}" for char in dict.fromkeys(text))
        raise ValueError(
            "A run label needs at least one visible character (a letter, digit, punctuation or symbol); this one "
            f"holds only invisible ones ({codes[:120]}). Type a few words that say what this run tried."
        )
    if len(text) > MAX_LABEL_CHARS:
        if not truncate:
            raise ValueError(
                f"A run label holds at most {MAX_LABEL_CHARS} characters; this one has {len(text)}. "
                f"Shorten it. Received: {text[:MAX_LABEL_CHARS]!r}…"
            )
        text = text[: MAX_LABEL_CHARS - 1].rstrip() + "…"
    return text


def _shown(value: Any) -> str:
    """An id from a link, quoted and cut short for a message."""
    text = value if isinstance(value, str) else str(type(value).__name__)
    return repr(text if len(text) <= 30 else text[:24] + "…")


def check_run_id(run_id: Any) -> str:
    """`run_id`, if it has the form of a run id; else an `UnknownRun` (no kept run can have it)."""
    if not is_key(run_id):
        raise UnknownRun(
            f"No run with id {_shown(run_id)} is kept on this server: the link may be mistyped "
            "(a run id is 24 letters, digits, '-' and '_'), or the run was deleted or evicted."
        )
    return run_id


def check_workspace(workspace: Any) -> str:
    """`workspace`, if it has the form of a workspace key; else a ValueError."""
    if not is_key(workspace):
        raise ValueError(
            f"A workspace key is 24 letters, digits, '-' and '_', as made by runstore.new_key(). "
            f"Received: {_shown(workspace)}"
        )
    return workspace


def unknown_run(run_id: str) -> UnknownRun:
    """The error for a well-formed run id that no kept run has."""
    return UnknownRun(
        f"No run with id {_shown(run_id)} is kept on this server: the link may be mistyped, or the run "
        "was deleted or evicted."
    )
