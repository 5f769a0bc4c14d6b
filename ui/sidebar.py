"""The sidebar every page shares: preset, seed, device, the run's status and presenter mode."""

from __future__ import annotations

import dataclasses
import threading

import streamlit as st

import sharecore
from sharecore.core.config import DEVICES
from sharecore.share import urlstate
from ui import presenter
from ui.keys import PRESENTER, SIDEBAR_DEVICE, SIDEBAR_PRESENTER, SIDEBAR_PRESET, SIDEBAR_SEED
from ui.state import config, load_preset, on_spec_change, preset_name, set_config, spec
from ui.training import active_run


def _on_preset() -> None:
    load_preset(st.session_state[SIDEBAR_PRESET])


def _on_seed() -> None:
    set_config(dataclasses.replace(config(), seed=int(st.session_state[SIDEBAR_SEED])))


def _on_device() -> None:
    set_config(dataclasses.replace(config(), device=st.session_state[SIDEBAR_DEVICE]))


def _on_presenter() -> None:
    st.session_state[PRESENTER] = bool(st.session_state[SIDEBAR_PRESENTER])


# The sidebar's "Edited on the Build page" slot of the script run in this thread. The sidebar is
# drawn before the page, and the Build page changes the spec after it: set_spec refills the slot
# (`ui.state.on_spec_change`), so the note is right on the run of the edit, not one run later.
_SIDEBAR = threading.local()


def _edited_note() -> None:
    slot = getattr(_SIDEBAR, "note", None)
    if slot is None:
        return
    if spec() != sharecore.preset(preset_name()):
        slot.caption(f"Edited on the Build page (started from '{preset_name()}').")
    else:
        slot.empty()


def draw() -> None:
    """The controls every page shares: preset, seed and device.

    Each page draws them (see `ui.routing.frame`), so on every page they are new widgets to Streamlit;
    their values are set from the session's experiment on every run, which their callbacks
    have already updated, so they always show the experiment and never a widget default.
    """
    presenter.style()  # here, so that every page, a new one too, is presented the same way
    ss = st.session_state
    ss[SIDEBAR_PRESET] = preset_name()
    ss[SIDEBAR_SEED] = config().seed
    ss[SIDEBAR_DEVICE] = config().device
    with st.sidebar:
        st.selectbox(
            "Preset",
            sharecore.presets(),
            key=SIDEBAR_PRESET,
            on_change=_on_preset,
            help="A ready-made model. Change it on the Build page.",
        )
        _SIDEBAR.note = st.empty()  # filled now, and again by set_spec if the page edits the spec
        _edited_note()
        st.number_input(
            "Seed",
            min_value=0,
            max_value=urlstate.MAX_SEED,
            step=1,
            key=SIDEBAR_SEED,
            on_change=_on_seed,
            help="Initial weights, teacher network and batch order.",
        )
        st.selectbox(
            "Device",
            DEVICES,
            key=SIDEBAR_DEVICE,
            on_change=_on_device,
            help="'auto' trains on a GPU when TensorFlow sees one, else on the CPU.",
        )
        run = active_run()
        if run is not None:  # drawn on full reruns only: the Train page's live panel has the details
            st.caption(f":material/hourglass: {'Waiting for a free trainer' if run.queued else 'Training is running'}.")
        st.caption("The URL holds this experiment: copy it to share.")
        ss[SIDEBAR_PRESENTER] = presenter.on()
        st.toggle(
            "Presenter mode",
            key=SIDEBAR_PRESENTER,
            on_change=_on_presenter,
            help="For a projector: the sidebar folds away (the arrow at the top left opens it again), every text "
            "and chart is larger, and the Lab shows Train beside the charts.",
        )


def end_of_run() -> None:
    """The slot belongs to the script run that drew it; a callback of the next one must not draw in it."""
    _SIDEBAR.note = None


on_spec_change(_edited_note)
