"""Workshop rooms: a facilitator opens a room, participants join it with a short code and hand in kept runs,
and the facilitator's board lists every hand-in.

A room has two names. Its *code* (six characters, none that a projector or a hand makes ambiguous: no
0/O, 1/I/L, 2/Z, 5/S, 8/B) is what participants type to join, and gives only joining and handing in. Its
*token* (`sharecore.runs.entries.new_key`, unguessable) is the facilitator's link: whoever has it sees
every hand-in, hides one, projects the board to the participants and closes the room.

A hand-in is a reference to a run kept in the participant's list (the run is stored once, in the same
`RunStore`), with the display name the participant chose and the run's label in their list at that moment.
It never joins the facilitator's list, so a room of 40 hand-ins evicts none of the facilitator's runs. A
run deleted or evicted from every list takes its hand-ins with it.

Caps: the server holds at most ``max_rooms`` rooms that are not closed, a room at most ``max_handins``
hand-ins, and a room (closed or not) is removed with its hand-ins ``hours`` after it was opened
(``SHARECORE_ROOM_HOURS``, ``SHARECORE_MAX_ROOMS``, ``SHARECORE_ROOM_HANDINS``).

Plain Python (SQL with ``?`` placeholders and standard types only): no TensorFlow, no Streamlit.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sharecore.core import settings
from sharecore.core.config import TrainConfig
from sharecore.core.results import TrainResult
from sharecore.core.spec import ModelSpec
from sharecore.runs.compare import LabelledRun, final_figures, unique_labels
from sharecore.runs.entries import check_run_id, check_workspace, clean_label, is_key, new_key
from sharecore.runs.store import RunStore
from sharecore.runs.storetables import reporting_store_errors
from sharecore.runs.whatif import differences

# Letters and digits that read and sound unlike each other: no 0/O, 1/I/L, 2/Z, 5/S, 8/B, U/V.
CODE_ALPHABET = "ACDEFGHJKMNPQRTWXY34679"
CODE_LENGTH = 6  # 23**6 = 148 million codes
MAX_NAME_CHARS = 40
_CODE = re.compile(f"[{CODE_ALPHABET}]{{{CODE_LENGTH}}}")


class UnknownRoom(KeyError):
    """No open room has this code (or token): mistyped, closed to new hand-ins, or expired."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown room"


@dataclass(frozen=True)
class Room:
    """A room as its code's holders see it (`token` is '' unless asked for with the token)."""

    code: str
    exercise: str  # the exercise id it starts from, or ''
    preset: str  # the starting experiment
    spec: ModelSpec
    config: TrainConfig
    created: float  # unix seconds
    expires: float  # unix seconds: then the room and its hand-ins are removed
    closed: bool  # no more joining or handing in
    projected: bool  # participants see the board
    token: str = ""  # the facilitator's link; only `open` and `by_token` fill it


@dataclass(frozen=True)
class HandIn:
    """One run handed in to a room."""

    run_id: str
    name: str  # the participant's display name (user text)
    label: str  # the run's label in the participant's list when handed in (user text)
    participant: str  # the participant's workspace key: never shown
    hidden: bool
    added: float  # unix seconds


def normal_code(text: Any) -> str:
    """A code as typed ('ack 3 4f', 'ACK-34F') in its stored form ('ACK34F').

    Raises:
        UnknownRoom: for text that cannot be a room code, saying what a code looks like.
    """
    code = re.sub(r"[\s-]", "", text).upper() if isinstance(text, str) else ""
    if not _CODE.fullmatch(code):
        shown = text[:20] if isinstance(text, str) else type(text).__name__
        raise UnknownRoom(
            f"{shown!r} is not a room code: a code is {CODE_LENGTH} letters and digits from "
            f"{CODE_ALPHABET} (no 0, O, 1, I, L, 2, Z, 5, S, 8, B, U or V). Check the code the facilitator shows."
        )
    return code


def clean_name(name: Any) -> str:
    """A display name as stored: one line of text, at most `MAX_NAME_CHARS` characters.

    Raises:
        ValueError: for a name that is empty or too long.
    """
    try:
        text = clean_label(name)
    except ValueError:
        raise ValueError("A display name cannot be empty. Type the name the class should see.") from None
    if len(text) > MAX_NAME_CHARS:
        raise ValueError(
            f"A display name holds at most {MAX_NAME_CHARS} characters; this one has {len(text)}. Shorten it."
        )
    return text


class Rooms:
    """The rooms and hand-ins of one `RunStore`, in its SQLite file (tables ``rooms`` and ``handins``).

    Every public method raises `sharecore.runs.store.StoreUnavailable` (a ValueError) when the file cannot
    be used, as the store's own methods do.
    """

    def __init__(self, store: RunStore, *, hours: int = 8, max_rooms: int = 100, max_handins: int = 300) -> None:
        """Rooms kept in `store`'s file.

        Args:
            store: the run store whose runs are handed in.
            hours: how long a room lives after it was opened.
            max_rooms: rooms, not closed, the server holds at once.
            max_handins: hand-ins one room holds.

        Raises:
            ValueError: for a cap that is not a whole number >= 1.
        """
        for name, value in (("hours", hours), ("max_rooms", max_rooms), ("max_handins", max_handins)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Rooms {name} must be a whole number >= 1. Received: {name}={value!r}")
        self.store = store
        self.hours = hours
        self.max_rooms = max_rooms
        self.max_handins = max_handins

    @classmethod
    def from_env(cls, store: RunStore, environ: Mapping[str, str] | None = None) -> Rooms:
        """Rooms in `store` with the caps of ``SHARECORE_ROOM_HOURS``, ``SHARECORE_MAX_ROOMS`` and
        ``SHARECORE_ROOM_HANDINS``.

        Raises:
            ValueError: naming the variable whose value is not a whole number >= 1.
        """
        return cls(
            store,
            hours=int(settings.read("SHARECORE_ROOM_HOURS", environ)),
            max_rooms=int(settings.read("SHARECORE_MAX_ROOMS", environ)),
            max_handins=int(settings.read("SHARECORE_ROOM_HANDINS", environ)),
        )

    @property
    def database(self) -> Any:
        """The store's SQLite file or PostgreSQL server: `reporting_store_errors` asks it to recover from an
        error and to word it."""
        return self.store.database

    # ------------------------------------------------------------------ the facilitator
    @reporting_store_errors
    def open(
        self, facilitator: str, spec: ModelSpec, config: TrainConfig, *, preset: str = "", exercise: str = ""
    ) -> Room:
        """Opens a room whose starting experiment is `spec` and `config`.

        Args:
            facilitator: the opening browser's workspace key.
            spec: the starting model; the board names what each hand-in changed from it.
            config: the starting training settings.
            preset: the preset the spec comes from, if any.
            exercise: the exercise the room works on (an id of `sharecore.teach.exercises`), or ''.

        Returns:
            The new room, with its `token`.

        Raises:
            ValueError: when the server already holds `max_rooms` rooms that are not closed.
        """
        facilitator = check_workspace(facilitator)
        now = time.time()
        with self.store._write() as db:
            self._purge(db, now)
            count = db.execute("SELECT count(*) FROM rooms WHERE closed = 0").fetchone()[0]
            if count >= self.max_rooms:
                first = db.execute("SELECT min(expires) FROM rooms WHERE closed = 0").fetchone()[0]
                raise ValueError(
                    f"This server holds at most {self.max_rooms} open rooms and all are in use, so no room was "
                    f"opened. Close a room you no longer need, or wait: the next one expires at "
                    f"{time.strftime('%H:%M UTC', time.gmtime(first))}."
                )
            code = self._new_code(db)
            token = new_key()
            db.execute(
                "INSERT INTO rooms (code, token, facilitator, exercise, preset, spec, config, created, expires, "
                "closed, projected) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0)",
                (
                    code,
                    token,
                    facilitator,
                    exercise,
                    preset,
                    json.dumps(spec.to_dict()),
                    json.dumps(config.to_dict()),
                    now,
                    now + self.hours * 3600,
                ),
            )
        return self.by_token(token)

    @staticmethod
    def _new_code(db: Any) -> str:
        while True:  # 148 million codes and at most a few hundred rooms: a clash is rare
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            if db.execute("SELECT 1 FROM rooms WHERE code = ?", (code,)).fetchone() is None:
                return code

    @reporting_store_errors
    def by_token(self, token: Any) -> Room:
        """The room whose facilitator link carries `token`, closed or not, until it expires.

        Raises:
            UnknownRoom: for a token no room has (mistyped, or the room expired).
        """
        if not is_key(token):
            raise UnknownRoom(_NO_BOARD)
        with self.store._read() as db:
            row = db.execute("SELECT * FROM rooms WHERE token = ? AND expires > ?", (token, time.time())).fetchone()
        if row is None:
            raise UnknownRoom(_NO_BOARD)
        return _room(row, with_token=True)

    def _change_room(self, token: str, column: str, value: int) -> None:
        room = self.by_token(token)
        with self.store._write() as db:
            db.execute(f"UPDATE rooms SET {column} = ? WHERE code = ?", (value, room.code))

    @reporting_store_errors
    def close(self, token: str) -> None:
        """Closes the room: no more joining or handing in; the board stays readable until the room expires.

        Raises:
            UnknownRoom: for a token no room has.
        """
        self._change_room(token, "closed", 1)

    @reporting_store_errors
    def project(self, token: str, projected: bool = True) -> None:
        """Lets the participants see the board (read-only), or hides it from them again.

        Raises:
            UnknownRoom: for a token no room has.
        """
        self._change_room(token, "projected", int(bool(projected)))

    @reporting_store_errors
    def hide(self, token: str, run_id: str, hidden: bool = True) -> None:
        """Takes a hand-in off the board (or puts it back); the participant still has the run.

        Raises:
            UnknownRoom: for a token no room has.
            KeyError: if the run is not handed in to this room.
        """
        room = self.by_token(token)
        with self.store._write() as db:
            changed = db.execute(
                "UPDATE handins SET hidden = ? WHERE room = ? AND run_id = ?", (int(bool(hidden)), room.code, run_id)
            ).rowcount
        if not changed:
            raise KeyError(f"Run {run_id[:24]!r} is not handed in to room {room.code}: it may have been withdrawn.")

    @reporting_store_errors
    def handins(self, room: Room, *, hidden: bool = False) -> list[HandIn]:
        """The room's hand-ins in the order they came in; with `hidden`, those taken off the board too.

        Pass a room from `by_token`, or from `find` only when it is projected: the list is the board.
        """
        with self.store._read() as db:
            rows = db.execute("SELECT * FROM handins WHERE room = ? ORDER BY added, run_id", (room.code,)).fetchall()
        return [_handin(row) for row in rows if hidden or not row["hidden"]]

    # ------------------------------------------------------------------ participants
    @reporting_store_errors
    def find(self, code: Any) -> Room:
        """The room a participant joins with `code` (as typed), without its token; closed rooms too, until
        they expire (the page says it is closed).

        Raises:
            UnknownRoom: for text that is not a code, or a code no room has now.
        """
        code = normal_code(code)
        with self.store._read() as db:
            row = db.execute("SELECT * FROM rooms WHERE code = ? AND expires > ?", (code, time.time())).fetchone()
        if row is None:
            raise UnknownRoom(
                f"No room has the code {code} now: check it with the facilitator (rooms expire "
                f"{self.hours} h after they were opened)."
            )
        return _room(row, with_token=False)

    @reporting_store_errors
    def hand_in(self, code: str, participant: str, run_id: str, name: str) -> None:
        """Hands in a run of `participant`'s list under display name `name`, with its label there now.

        Handing in a run again updates its name and label (and shows it again if the facilitator hid it).

        Raises:
            UnknownRoom: for a code no room has now.
            ValueError: for a closed room, a full room, an empty or too long name, or a run the
                participant's list does not hold.
        """
        participant = check_workspace(participant)
        run_id = check_run_id(run_id)
        name = clean_name(name)
        room = self.find(code)
        if room.closed:
            raise ValueError(f"Room {room.code} is closed: the facilitator takes no more hand-ins.")
        now = time.time()
        with self.store._write() as db:
            entry = db.execute(
                "SELECT label FROM entries WHERE workspace = ? AND run_id = ?", (participant, run_id)
            ).fetchone()
            if entry is None:
                raise ValueError(
                    f"Run {run_id!r} is not in your kept runs, so it cannot be handed in: only a run your "
                    "browser kept (or added from a link) can."
                )
            if db.execute("SELECT 1 FROM handins WHERE room = ? AND run_id = ?", (room.code, run_id)).fetchone():
                db.execute(
                    "UPDATE handins SET name = ?, label = ?, hidden = 0 WHERE room = ? AND run_id = ?",
                    (name, entry["label"], room.code, run_id),
                )
                return
            count = db.execute("SELECT count(*) FROM handins WHERE room = ?", (room.code,)).fetchone()[0]
            if count >= self.max_handins:
                raise ValueError(
                    f"Room {room.code} holds at most {self.max_handins} hand-ins and is full. Ask the facilitator "
                    "to hide or open a new room."
                )
            db.execute(
                "INSERT INTO handins (room, run_id, participant, name, label, hidden, added) "
                "VALUES (?, ?, ?, ?, ?, 0, ?)",
                (room.code, run_id, participant, name, entry["label"], now),
            )

    @reporting_store_errors
    def withdraw(self, code: str, participant: str, run_id: str) -> None:
        """Takes back a run `participant` handed in; a run not handed in is left as it is."""
        participant = check_workspace(participant)
        code = normal_code(code)
        with self.store._write() as db:
            db.execute(
                "DELETE FROM handins WHERE room = ? AND run_id = ? AND participant = ?", (code, run_id, participant)
            )

    @reporting_store_errors
    def handed_in(self, code: str, participant: str) -> list[HandIn]:
        """`participant`'s own hand-ins to the room (hidden ones too): what a participant may see of it."""
        participant = check_workspace(participant)
        code = normal_code(code)
        with self.store._read() as db:
            rows = db.execute(
                "SELECT * FROM handins WHERE room = ? AND participant = ? ORDER BY added, run_id", (code, participant)
            ).fetchall()
        return [_handin(row) for row in rows]

    # ------------------------------------------------------------------ expiry
    @reporting_store_errors
    def purge(self) -> int:
        """Removes the rooms whose time is up, with their hand-ins (their runs stay in their lists); returns
        how many rooms went."""
        with self.store._write() as db:
            return self._purge(db, time.time())

    @staticmethod
    def _purge(db: Any, now: float) -> int:
        expired = [row[0] for row in db.execute("SELECT code FROM rooms WHERE expires <= ?", (now,))]
        for code in expired:
            db.execute("DELETE FROM handins WHERE room = ?", (code,))  # not left to a cascade another back end lacks
            db.execute("DELETE FROM rooms WHERE code = ?", (code,))
        return len(expired)


_NO_BOARD = (
    "This facilitator link opens no room: it is mistyped or cut, or the room expired. Open a new room on the Room page."
)


def _room(row: Any, *, with_token: bool) -> Room:
    return Room(
        code=row["code"],
        exercise=row["exercise"],
        preset=row["preset"],
        spec=ModelSpec.from_dict(json.loads(row["spec"])),
        config=TrainConfig.from_dict(json.loads(row["config"])),
        created=row["created"],
        expires=row["expires"],
        closed=bool(row["closed"]),
        projected=bool(row["projected"]),
        token=row["token"] if with_token else "",
    )


def _handin(row: Any) -> HandIn:
    return HandIn(
        run_id=row["run_id"],
        name=row["name"],
        label=row["label"],
        participant=row["participant"],
        hidden=bool(row["hidden"]),
        added=row["added"],
    )


# ----------------------------------------------------------------------------- the board
BOARD_COLUMNS = [
    *("name", "run", "differs from the start", "loss tied", "loss untied", "held-out loss tied"),
    *("held-out loss untied", "held-out accuracy tied", "held-out accuracy untied", "final divergence untied"),
    *("steps", "run_id"),
]


def board_names(handins: Sequence[HandIn]) -> list[str]:
    """Each hand-in's name on the board's charts, 'name: label', unique (' (2)' for a repeat)."""
    return unique_labels([f"{h.name}: {h.label}" for h in handins])


def board(room: Room, handins: Sequence[HandIn], results: Mapping[str, TrainResult]) -> pd.DataFrame:
    """The board: one row per hand-in (in `handins`' order) with its final figures and what it changed from
    the room's starting experiment.

    Args:
        room: the room (its starting experiment).
        handins: the hand-ins to list.
        results: run id -> the run's records; a hand-in without one (deleted meanwhile) is left out.

    Returns:
        `BOARD_COLUMNS`: figures a run does not have are NaN; 'differs from the start' is 'nothing' for a run
        of the starting experiment itself.
    """
    shown = [h for h in handins if h.run_id in results]
    runs = [LabelledRun(name, results[h.run_id], h.run_id) for h, name in zip(shown, board_names(shown))]
    if not runs:
        return pd.DataFrame(columns=BOARD_COLUMNS)
    figures = final_figures(runs)
    start = (room.spec, room.config)
    differs = [", ".join(differences(start, (run.result.spec, run.result.config))) or "nothing" for run in runs]
    frame = figures.assign(
        name=[h.name for h in shown],
        run=[h.label for h in shown],
        **{"differs from the start": differs},
        run_id=[h.run_id for h in shown],
    )
    return frame[BOARD_COLUMNS].reset_index(drop=True)


__all__ = [
    "BOARD_COLUMNS",
    "CODE_ALPHABET",
    "CODE_LENGTH",
    "HandIn",
    "MAX_NAME_CHARS",
    "Room",
    "Rooms",
    "UnknownRoom",
    "board",
    "board_names",
    "clean_name",
    "normal_code",
]
