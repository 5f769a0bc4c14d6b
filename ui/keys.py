"""Every `st.session_state` key of the app and every key it gives a Streamlit element, defined once.

Each section names the module that writes its keys: a key has one writer, and the other modules
read it through that module's functions. A widget's key is also its CSS class (`.st-key-` with
dots as dashes: "train.steps" is `.st-key-train-steps`), which the browser tests select by; a
key that ends in a dot-joined part is made with `of(prefix, ...)`.
"""

from __future__ import annotations


def of(prefix: str, *parts: object) -> str:
    """The key `prefix.part1.part2...` ('lab.model', 3, 'tensor', 'W' -> 'lab.model.3.tensor.W')."""
    return ".".join(map(str, (prefix, *parts)))


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
RESULT = "result"  # the current TrainResult (the last run, complete or stopped, or a kept run loaded), or None
CURRENT_RUN_ID = "current_run_id"  # the kept id of RESULT (what Continue extends); None when it was not kept
KEEP_NOTES = "keep_notes"  # what the store said about the last run kept (evictions, problems)
WORKSPACE = "workspace"  # this browser's workspace key (from its cookie, or new)
WORKSPACE_NEW = "workspace_new"  # True until the cookie has been written into the browser
SHOWN = "shown_runs"  # ids of the kept runs the Lab and Compare pages overlay, in order
SHARED = "shared_run"  # the run id a share link asked for, until the Compare page has shown it
LOADED = "loaded_runs"  # run id -> StoredRun read back this session (a run never changes once kept)
STORE_ERROR = "store_error"  # why the run store could not be read on the last try, or None

# ----------------------------------------------------------------------------- kept runs drawn (ui.kept_views)
# Under the prefix a page passes (LAB_RUNS, COMPARE_RUNS): of(prefix, LOG_Y) is 'lab.log_y'.
LOG_Y = "log_y"  # the loss overlay's log-scale toggle
LOSS_OVERLAY = "loss"  # the loss overlay (training and held-out)
DIVERGENCE_OVERLAY = "divergence"  # the divergence overlay
COSINE_OVERLAY = "cosine"  # the gradient-cosine overlay
OVERLAYS_BOX = "overlays"  # '<prefix>-overlays': the container whose width decides whether drift and cosine stack
RUNS_TABLE = "runs"  # of(prefix, RUNS_TABLE, version): the kept-runs table; a new version is a fresh table
RUNS_TABLE_VERSION = "runs.version"  # the table's version, bumped after every edit so that it shows the store
RUNS_TABLE_PROBLEMS = "runs.problems"  # what the table's last edits could not do (messages)
REVOKE_CHOICE = "revoke_choice"  # the run whose share link the owner takes back
REVOKE_BUTTON = "revoke"
REVOKED = "revoked"  # what taking a link back did, shown once after the rerun

# ----------------------------------------------------------------------------- workshop rooms (ui.room)
ROOM_CODE = "room.code"  # the room this session joined as a participant, or None
ROOM_NAME = "room.name"  # the display name it joined with
ROOM_ASKED = "room.asked"  # the code a `?room=CODE` link asked for, until the Room page has offered it
ROOM_BOARD = "room.board"  # the facilitator token of the room this session runs (from its link), or None
ROOM_NOTES = "room.notes"  # (kind, message) pairs to show once: what the last room action did
ROOM_RESULTS = "room.results"  # run id -> TrainResult of hand-ins read this session (a kept run never changes)
ROOM_SEEN = "room.seen"  # what the board drew on the last full run; the live check reruns the page when it changes
ROOM_HAND_IN = "room.hand_in"  # of(ROOM_HAND_IN, run id): Compare's "Hand in" / "Withdraw" button

# ----------------------------------------------------------------------------- training settings (ui.settings_editor)
# One widget per TrainConfig field, the same key in the Lab and on the Train page; each is set from
# the experiment on every run, and its callback changes the experiment.
SETTING = {
    field: f"train.{field}"
    for field in ("dataset", "teacher", "optimizer", "learning_rate", "steps", "batch_size", "record_every")
}
SETTINGS_ADJUSTED = "settings_adjusted"  # the Adjustments of the last change, said once on the run of the change
SETTINGS_REFUSED = "settings_refused"  # (field, why, spec, config) of a change that could not be used, or None

# ----------------------------------------------------------------------------- the sidebar (ui.sidebar)
SIDEBAR_PRESET = "sidebar.preset"  # the preset picker
SIDEBAR_SEED = "sidebar.seed"  # the seed input
SIDEBAR_DEVICE = "sidebar.device"  # the device picker
SIDEBAR_PRESENTER = "sidebar.presenter"  # the presenter-mode toggle
PRESENTER = "presenter"  # True: every page in presenter mode (ui.presenter)

# ----------------------------------------------------------------------------- routing (ui.routing)
SCRIPT_RUNS = "script_runs"  # how many full runs of the page script this session has had

# ----------------------------------------------------------------------------- start-up (ui.startup)
CHARTS_WARMED = "charts_warmed"  # True once this session's browser has been given its hidden chart
WARM_UP_CHART = "startup.warm-up-chart"  # that chart's container (hidden: `ui.presenter`'s always-on style)

# ----------------------------------------------------------------------------- an uploaded model (ui.own_model)
OWN_MODEL = "own_model"  # the Outcome of the last model uploaded on the Your model page, or None

# ----------------------------------------------------------------------------- the Lab (pages/lab.py)
LAB_CONTROLS = "lab-controls"  # the column of controls
LAB_VIEW = "lab-view"  # the column of charts (first when the columns stack)
LAB_PRESET = "lab.preset"  # "Load a preset"; None again once it has loaded one
LAB_RESET = "lab.reset"  # the Reset button
LAB_MODEL = "lab.model"  # of(LAB_MODEL, draft version, 'tensor' | 'use', name, ...): the model editor's fields
LAB_TRAIN = "lab.train"  # the Train button
LAB_TRAIN_ROW = "lab-train-row"  # the row of Train, Stop and the + buttons (first in presenter mode)
LAB_STOP = "lab.stop"  # the Stop button
LAB_CONTINUE = "lab.continue"  # the "+N steps" button
LAB_STEP = "lab.step"  # the "+record_every steps" button
LAB_LIVE_LOSS = "lab.live_loss"  # the live loss chart of a run in progress
LAB_RUNS = "lab"  # the prefix of the Lab's overlays and kept-runs table (ui.kept_views)

# ----------------------------------------------------------------------------- Compare runs (pages/compare.py)
COMPARE_PICK = "compare.pick"  # the runs to compare (set from SHOWN on every run)
COMPARE_TENSOR = "compare.tensor"  # the shared tensor the divergence overlay shows
COMPARE_RUNS = "compare"  # the prefix of the page's overlays (ui.kept_views)
COMPARE_ACCURACY = "compare.accuracy"  # the held-out accuracy overlay
COMPARE_LOAD = "compare.load"  # of(COMPARE_LOAD, run id): a run's "Load in the Lab" button
COMPARE_CSV = "compare.csv"  # the curves download
COMPARE_SPECS = "compare.specs"  # the specs-and-settings download
COMPARE_TENSORBOARD = "compare.tensorboard"  # the TensorBoard logs download (.zip)

# ----------------------------------------------------------------------------- Exercises (pages/exercises.py)
EXERCISES_SET_UP = "exercises.setup"  # of(EXERCISES_SET_UP, exercise id): an exercise's Set up button

# ----------------------------------------------------------------------------- the active exercise (ui.exercise)
EXERCISE_ACTIVE = "exercise.active"  # the id of the exercise set up last, or None once closed
EXERCISES_OPEN = "exercises.open"  # the page Set up asked for; opened on the run its click starts
EXERCISE_TAB = "exercise.tab"  # (tabs key, tab label) Set up asked to open, until the page with those tabs takes it
EXERCISE_PANEL = "exercise-panel"  # the compact panel that keeps its question in view in the Lab and on Build
EXERCISE_CLOSE = "exercise.close"  # the panel's close button

EXERCISES_ROOM = "exercises.room"  # of(EXERCISES_ROOM, exercise id): an exercise's "Open a room" button

# ----------------------------------------------------------------------------- Room (pages/room.py)
ROOM_JOIN_CODE = "room.join.code"  # the code typed to join
ROOM_JOIN_NAME = "room.join.name"  # the display name typed to join
ROOM_JOIN = "room.join"  # the Join button
ROOM_LEAVE = "room.leave"  # the Leave button
ROOM_OPEN_EXERCISE = "room.open.exercise"  # the exercise a new room starts from (None: the current experiment)
ROOM_OPEN = "room.open"  # the Open a room button
ROOM_PICK = "room.pick"  # the participant's kept run to hand in
ROOM_SUBMIT = "room.submit"  # the participant's Hand in button
ROOM_WITHDRAW = "room.withdraw"  # of(ROOM_WITHDRAW, run id): a participant's Withdraw button
ROOM_PROJECT = "room.project"  # the facilitator's "Project the board to the room" toggle
ROOM_CLOSE = "room.close"  # the facilitator's Close button
ROOM_HIDE = "room.hide"  # the facilitator's hand-ins taken off the board
ROOM_SORT = "room.sort"  # what the board is sorted by
ROOM_TABLE = "room.table"  # the board's table (rows selectable)
ROOM_PICKED = "room.picked"  # in presenter mode, the hand-ins picked by name to overlay
ROOM_ALL = "room.all"  # "Overlay all hand-ins"
ROOM_CHARTS = "room"  # the prefix of the board's overlays (ui.kept_views)
ROOM_CSV = "room.csv"  # the board's download

# ----------------------------------------------------------------------------- Build (pages/build.py)
BUILD_EDITOR = "build"  # of(BUILD_EDITOR, draft version, ...): the spec editor's fields, fresh for each version
BUILD_EDITOR_BOX = "build-editor"  # the editor's column
BUILD_VIEWS = "build-views"  # the views' column (first when the columns stack)
BUILD_FAMILY = "build.family"  # of(BUILD_FAMILY, family): a "Start from a family" button
BUILD_LOAD_ERROR = "build.load_error"  # why the last pasted or uploaded spec could not be loaded, or None
BUILD_TABS = "build.tabs"  # the views' open tab, by its label (Set up's request: ui.exercise.take_tab)
BUILD_VARIANT = "build.variant"  # tied or untied, for the views
BUILD_TENSOR = "build.tensor"  # the shared tensor the tensor views show
BUILD_TENSOR_VIEWS = "build.tensor_views"  # the tensor views chart
BUILD_PARAM_BARS = "build.param_bars"  # the parameter bars chart
BUILD_EQUIVARIANCE = "build.equivariance"  # the equivariance view (specs with turned or flipped uses)
BUILD_DOWNLOAD_CODE = "build.download_code"  # the Keras script download
BUILD_DOWNLOAD_SPEC = "build.download_spec"  # the spec JSON download
BUILD_PASTE = "build.paste"  # the pasted spec JSON
BUILD_LOAD_PASTE = "build.load_paste"  # "Load pasted JSON"
BUILD_UPLOAD = "build.upload"  # the uploaded spec JSON file

# ----------------------------------------------------------------------------- Train (pages/train.py)
TRAIN_START = "train.start"  # the Train button
TRAIN_STOP = "train.stop"  # the Stop button
TRAIN_LOG_Y = "train.log_y"  # the loss chart's log-scale toggle
TRAIN_LIVE_LOSS = "train.live_loss"  # the live loss chart of a run in progress
TRAIN_LOSS = "train.loss"  # the finished run's loss chart
TRAIN_DOWNLOAD = "train.dl"  # of(TRAIN_DOWNLOAD, label): a download of the finished run

# ----------------------------------------------------------------------------- Gradient flow (pages/gradients.py)
GRADIENTS_RUN = "gradients.run"  # of(GRADIENTS_RUN, current run id): the kept run shown (ui.training.pick_result)
GRADIENTS_TENSOR = "gradients.tensor"  # the shared tensor shown
GRADIENTS_FLOW = "gradients.flow"  # the gradient-flow chart
GRADIENTS_COSINE = "gradients.cosine"  # the gradient-cosine chart

# ----------------------------------------------------------------------------- Divergence (pages/divergence.py)
DIVERGENCE_RUN = "divergence.run"  # of(DIVERGENCE_RUN, current run id): the kept run shown (ui.training.pick_result)
DIVERGENCE_TENSOR = "divergence.tensor"  # the shared tensor shown
DIVERGENCE_CHART = "divergence.chart"  # the divergence chart
DIVERGENCE_STEP = "divergence.step"  # the step the pairwise heatmap shows
DIVERGENCE_HEATMAP = "divergence.heatmap"  # the pairwise heatmap
DIVERGENCE_WEIGHTS = "divergence.weights"  # the weights whose histograms are shown (None: all)
DIVERGENCE_HISTOGRAMS = "divergence.histograms"  # the weight histograms

# ----------------------------------------------------------------------------- Your model (pages/your_model.py)
YOUR_MODEL_UPLOAD = "your_model.upload"  # the uploaded .keras file
YOUR_MODEL_DATA = "your_model.data"  # the uploaded .npz batch (arrays x and y), optional
YOUR_MODEL_LOSS = "your_model.loss"  # the loss the gradient is split for
YOUR_MODEL_TENSOR = "your_model.tensor"  # the shared weight the chart shows
YOUR_MODEL_FLOW = "your_model.flow"  # the gradient-split chart
