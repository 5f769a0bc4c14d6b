"""Every `st.session_state` key of the app, defined once, each with what it holds and which module writes it.

A key is written by one module only (its owner, named in each section); the others read it through that
module's functions.
"""

from __future__ import annotations

# ----------------------------------------------------------------------------- the experiment (ui.state)
PRESET = "preset"  # name of the preset the spec starts from
SPEC = "spec"  # the current valid ModelSpec: what every page shows
CONFIG = "config"  # the current TrainConfig
DRAFT = "draft"  # the Build page's editor content as spec-like data; may be invalid
DRAFT_VERSION = "draft_version"  # bumped when the editor must reload from DRAFT
URL_WARNINGS = "url_warnings"  # what the link asked for that could not be used

# ----------------------------------------------------------------------------- the training run (ui.training)
RUN = "run"  # the BackgroundRun in progress, or None
RUN_ERROR = "run_error"  # why the last run could not train, or None

# ----------------------------------------------------------------------------- kept runs (ui.kept)
RESULT = "result"  # the last TrainResult (complete or stopped), or None
WORKSPACE = "workspace"  # this browser's workspace key (from its cookie, or new)
WORKSPACE_NEW = "workspace_new"  # True until the cookie has been written into the browser
LAST_SETTINGS = "last_settings"  # (spec, config) of the last kept run: what the next label compares with
KEEP_NOTES = "keep_notes"  # what the store said about the last run kept (evictions, problems)
SHOWN = "shown_runs"  # ids of the kept runs the Lab and Compare pages overlay, in order
SHARED = "shared_run"  # the run id a share link asked for, until the Compare page has shown it
CURRENT_RUN_ID = "current_run_id"  # the kept id of the session's current result (what Continue extends)
LOADED = "loaded_runs"  # run id -> StoredRun read back this session (a run never changes once kept)
STORE_ERROR = "store_error"  # why the run store could not be read on the last try, or None

# ----------------------------------------------------------------------------- the sidebar (ui.sidebar)
PRESENTER = "presenter"  # True: every chart in presenter mode (larger text)

# ----------------------------------------------------------------------------- routing (ui.routing)
SCRIPT_RUNS = "script_runs"  # how many full runs of the page script this session has had
