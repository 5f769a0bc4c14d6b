"""The session's experiment: the preset it started from, its model spec and training settings, the Build
editor's draft, and the URL that holds them.

All per-user state lives in `st.session_state` (one per browser tab), so two users of one server never
see each other's models or runs.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import streamlit as st

import sharecore
from sharecore.core.config import TrainConfig
from sharecore.core.limits import Limits, check_limits
from sharecore.core.spec import ModelSpec
from sharecore.share import urlstate
from ui.keys import CONFIG, DRAFT, DRAFT_VERSION, PRESET, SPEC, URL_WARNINGS
from ui.text import plain

# Called with no arguments after every change of the spec. The sidebar's "Edited on the Build page"
# note registers here (`ui.sidebar`): the sidebar is drawn before the page, and the Build page changes
# the spec after it, so the note is refilled on the run of the edit, not one run later.
_SPEC_LISTENERS: list[Callable[[], None]] = []


def on_spec_change(listener: Callable[[], None]) -> None:
    """Calls `listener()` after every later change of the spec (once per listener)."""
    if listener not in _SPEC_LISTENERS:
        _SPEC_LISTENERS.append(listener)


def init_state() -> None:
    """On a session's first run, reads the experiment from the URL."""
    ss = st.session_state
    if SPEC not in ss:
        state = urlstate.read_state(st.query_params.to_dict())
        ss[PRESET] = state.preset
        ss[SPEC] = state.spec
        ss[CONFIG] = state.config
        ss[DRAFT] = state.spec.to_dict()
        ss[DRAFT_VERSION] = 0
        ss[URL_WARNINGS] = list(state.warnings)


def spec() -> ModelSpec:
    return st.session_state[SPEC]


def config() -> TrainConfig:
    return st.session_state[CONFIG]


def preset_name() -> str:
    return st.session_state[PRESET]


def label_baseline(spec_: ModelSpec) -> tuple[tuple[ModelSpec, TrainConfig], str]:
    """What a run of `spec_` is named against (`sharecore.runs.whatif.preset_label`), and the preset's name:
    the session's preset as published with its default settings, or, for a model from no preset, `spec_`
    itself with the default settings and no preset name."""
    name = preset_name()
    if name not in sharecore.presets():
        return (spec_, urlstate.default_config(spec_)), ""
    published = sharecore.preset(name)
    return (published, urlstate.default_config(published)), name


def draft() -> dict:
    """The Build editor's content (spec-like data, maybe invalid)."""
    return st.session_state[DRAFT]


def draft_version() -> int:
    """The Build editor's version: the editors' widget keys carry it, so a new version gives fresh widgets."""
    return st.session_state[DRAFT_VERSION]


def set_draft(new: dict) -> None:
    """Keeps the Build editor's content as its widgets hold it (the widgets stay)."""
    st.session_state[DRAFT] = new


def edit_draft(change: Callable[[dict], None]) -> None:
    """Applies `change` to the Build editor's content (add or remove a tensor or use) and reloads the editor."""
    change(st.session_state[DRAFT])
    st.session_state[DRAFT_VERSION] += 1


def set_spec(new: ModelSpec, *, reload_editor: bool) -> None:
    """Makes `new` (already validated) the current spec; `reload_editor` resets the Build editor to it."""
    ss = st.session_state
    ss[SPEC] = new
    if reload_editor:
        ss[DRAFT] = new.to_dict()
        ss[DRAFT_VERSION] += 1
    ss[URL_WARNINGS] = []
    sync_url()
    for listener in _SPEC_LISTENERS:
        listener()


def set_config(new: TrainConfig) -> None:
    st.session_state[CONFIG] = new
    st.session_state[URL_WARNINGS] = []
    sync_url()


def load_preset(name: str) -> None:
    """Switches to preset `name` (sidebar and Build editor follow).

    A language model comes with its own task: its data set becomes 'tokens'. (A data set that the
    new model cannot train on is changed by the settings editor, which says so: `fit_settings`.)
    """
    st.session_state[PRESET] = name
    new = sharecore.preset(name)
    set_spec(new, reload_editor=True)
    if urlstate.datasets_for(new)[0] == "tokens" and config().dataset != "tokens":
        set_config(dataclasses.replace(config(), dataset="tokens"))


def load_experiment(spec_: ModelSpec, config_: TrainConfig, preset: str) -> None:
    """Makes (spec_, config_) the session's experiment, started from preset `preset`: the Lab,
    Build editor, Train settings and sidebar all show it on their next run (an exercise's
    one-click setup, a kept run's "load these settings", Reset).

    No widget key needs resetting: the settings and the sidebar set theirs from the experiment on
    every run, and the model editors' keys carry the draft version, which `set_spec` moves on.
    """
    st.session_state[PRESET] = preset
    set_spec(spec_, reload_editor=True)
    set_config(config_)


def reset_to_preset(name: str) -> None:
    """Reset / picking a preset in the Lab: the preset as published, with its default settings (the
    seed and device stay); kept runs stay too."""
    new = sharecore.preset(name)
    base = urlstate.default_config(new)
    load_experiment(new, dataclasses.replace(base, seed=config().seed, device=config().device), name)


def sync_url(*, keep_share_link: bool = False) -> None:
    """Writes the experiment into the URL, so that copying it shares the experiment.

    Args:
        keep_share_link: leave a URL that holds a share link's run id alone (`?run=<id>`, the
            Compare page's link): it names a run, whose preset may not be this session's, and a
            wrong id stays in view beside the message that says so. A change of the experiment
            writes it over the link.
    """
    current = st.query_params.to_dict()
    if keep_share_link and list(current) == ["run"]:
        return
    params = urlstate.encode_state(preset_name(), spec(), config())
    if current != params:
        st.query_params.from_dict(params)


def show_url_warnings() -> None:
    for message in st.session_state[URL_WARNINGS]:
        st.warning(plain(message), icon=":material/link_off:")  # they quote the link's text


def check_spec(candidate: ModelSpec) -> None:
    """The core's validation plus this server's size limits, for a model trained with the default settings;
    raises ValueError."""
    check_limits(candidate)


@functools.lru_cache(maxsize=32)
def _run_problem(spec_: ModelSpec, config_: TrainConfig, limits: Limits) -> str | None:
    """Why `config_` cannot train `spec_` under `limits` (the core's checks and the caps), or None.

    A pure function of frozen values, so its answers are kept: a setting's change, the editor's draw
    on the run it starts and a Train click ask about the same experiment, and the check runs once.
    """
    try:
        check_limits(spec_, config_, limits)
    except ValueError as err:
        return str(err)
    return None


def run_problem(spec_: ModelSpec | None = None, config_: TrainConfig | None = None) -> str | None:
    """Why the experiment (or `spec_` trained with `config_`) cannot train under this server's limits now, or None."""
    return _run_problem(spec_ or spec(), config_ or config(), Limits.from_env())


def change_setting(field: str, value: Any) -> tuple[urlstate.Adjustment, ...]:
    """Sets one training setting of the experiment: the one way a settings widget changes the TrainConfig.

    The value is brought into the range this server trains with (`urlstate.fit_config`, which may
    change a setting that depends on it too: record_every is at most the steps), and the run is then
    checked once against the spec and the server's limits.

    Args:
        field: a `TrainConfig` field.
        value: its new value.

    Returns:
        What had to change to fit (`Adjustment`s, for the editor to say); empty when nothing did.

    Raises:
        ValueError: why the experiment cannot train with this value; the settings are then unchanged.
    """
    limits = Limits.from_env()
    asked = dataclasses.replace(config(), **{field: value})  # TrainConfig checks the value itself
    used, adjustments = urlstate.fit_config(spec(), asked, limits)
    problem = _run_problem(spec(), used, limits)
    if problem:
        raise ValueError(problem)
    set_config(used)
    return adjustments


def fit_settings() -> tuple[urlstate.Adjustment, ...]:
    """Brings the settings into range for the current spec, which may have changed since they were set (the
    digits data set on a model that does not read 8x8 images); returns what changed."""
    used, adjustments = urlstate.fit_config(spec(), config())
    if adjustments:
        set_config(used)
    return adjustments
