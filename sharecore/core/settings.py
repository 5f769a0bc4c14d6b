"""The server's settings: every SHARECORE_* environment variable, read by one parser with one message style.

Each variable is a `Setting` in `SETTINGS`: the caps of `Limits` (``SHARECORE_MAX_PARAMS``, ...) and
what the run store, the runner, the dashboard and the GPU set-up read. `read` gives a variable's
value, or its default when it is not set; a value that cannot be used is a `ValueError` that names
the variable, says what it must be and quotes what was received, never a traceback. `problems`
lists every such value at once, for a dashboard to show on every page.

Plain Python: no TensorFlow, no Streamlit.

Example:
    >>> read("SHARECORE_KEPT_RUNS", {})
    30
    >>> read("SHARECORE_KEPT_RUNS", {"SHARECORE_KEPT_RUNS": "12"})
    12
    >>> problems({"SHARECORE_KEPT_RUNS": "twelve", "SHARECORE_WARM_UP": "0"})
    {'SHARECORE_KEPT_RUNS': "environment variable SHARECORE_KEPT_RUNS must be a whole number >= 1, e.g. 30. Received: 'twelve'"}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from sharecore.core.fields import parse_count
from sharecore.core.limits import Limits, env_variable

__all__ = ["SETTINGS", "Setting", "problems", "read", "value_or_default"]


@dataclass(frozen=True)
class Setting:
    """One environment variable the app reads."""

    variable: str  # SHARECORE_...
    kind: type  # int: a whole number >= 1; bool: 0 or 1; str: a folder or a URL
    default: int | bool | str
    what: str  # what it sets, in a few words

    def parse(self, value: str) -> int | bool | str:
        """`value` as this setting's kind; raises ValueError naming the variable."""
        where = f"environment variable {self.variable}"
        if self.kind is int:
            return parse_count(value, where, example=str(self.default))
        if self.kind is bool:
            if value.strip() not in ("0", "1"):
                raise ValueError(f"{where} must be 0 or 1. Received: {value[:40]!r}")
            return value.strip() == "1"
        return value if value.strip() else self.default  # set but empty (`SHARECORE_DATA_DIR= make run`): the default


def _caps() -> list[Setting]:
    """The caps of `Limits`, one variable each (`Limits.from_env` reads them)."""
    defaults = Limits()
    return [Setting(env_variable(f.name), int, getattr(defaults, f.name), f"the cap {f.name}") for f in fields(Limits)]


SETTINGS: dict[str, Setting] = {
    s.variable: s
    for s in [
        *_caps(),
        Setting("SHARECORE_DATA_DIR", str, ".sharecore-data", "the folder of the run store"),
        Setting("SHARECORE_DATABASE_URL", str, "", "a PostgreSQL server for the run store instead of its folder"),
        Setting("SHARECORE_KEPT_RUNS", int, 30, "runs kept per browser"),
        Setting("SHARECORE_STORE_MB", int, 300, "MiB all kept runs may take"),
        Setting("SHARECORE_WORKSPACE_MB", int, 40, "MiB the runs one browser lists may take"),
        Setting("SHARECORE_PINNED_MB", int, 16, "MiB the pinned runs of one browser may take"),
        Setting("SHARECORE_VISITOR_DAYS", int, 7, "days a list of share-link visits only is kept unused"),
        Setting("SHARECORE_ROOM_HOURS", int, 8, "hours a workshop room lives after it is opened"),
        Setting("SHARECORE_MAX_ROOMS", int, 100, "workshop rooms open at once on the server"),
        Setting("SHARECORE_ROOM_HANDINS", int, 300, "runs one workshop room takes in"),
        Setting("SHARECORE_MAX_CONCURRENT_RUNS", int, 2, "runs that train at once in one server process"),
        Setting(
            "SHARECORE_WARM_UP",
            bool,
            True,
            "1: compile the default trainer when the server starts, and have each browser set up its chart code",
        ),
        Setting("SHARECORE_TF32", bool, False, "1: keep TensorFloat-32 on Ampere and newer GPUs"),
    ]
}


def read(variable: str, environ: Mapping[str, str] | None = None) -> int | bool | str:
    """The value of setting `variable` (one of `SETTINGS`), or its default when it is not set.

    Raises:
        ValueError: naming the variable, if its value cannot be used.
    """
    setting = SETTINGS[variable]
    environ = os.environ if environ is None else environ
    if variable not in environ:
        return setting.default
    return setting.parse(environ[variable])


def value_or_default(variable: str, environ: Mapping[str, str] | None = None) -> int | bool | str:
    """As `read`, but a value that cannot be used gives the default: for what a server reads as it starts,
    which must start anyway and say so (`problems` lists it, for every page to show)."""
    try:
        return read(variable, environ)
    except ValueError:
        return SETTINGS[variable].default


def problems(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each SHARECORE_* setting whose value cannot be used (`read` would raise), with the sentence that says why."""
    environ = os.environ if environ is None else environ
    found = {}
    for variable, setting in SETTINGS.items():
        if variable in environ:
            try:
                setting.parse(environ[variable])
            except ValueError as err:
                found[variable] = str(err)
    return found
