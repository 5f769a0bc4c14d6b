# ruff: noqa: F401  (re-exports: the pages still read everything as `ui.<name>`)
"""What every page shares: the session's experiment, the sidebar, the training run and cached calls.

Lives outside pages/ so that Streamlit never lists it as a page.

All per-user state lives in `st.session_state` (one per browser tab), so two users of one
server never see each other's models or runs. Pure results are cached in one byte-bounded
cache (`ui.figures`); nothing is put in `st.cache_resource`, which every user of a hosted app shares.

The modules, bottom to top (each imports only those above it in this list):

    keys, text, cache, sitemap   session keys, user text, the byte-bounded cache, the page list
    startup                      TensorFlow loaded and warmed up, Keras's clean-up, server settings
    state                        the experiment: preset, spec, settings, draft, URL
    widgets, figures             small shared widgets; cached pure calls
    kept, kept_views             the workspace, run store and kept runs; their charts and table
    training                     the session's run: start, stop, continue, collect, wait
    sidebar                      the controls every page shares
    routing                      the router's last step and `frame()`, every page's first call
"""

from sharecore.runs.runner import active_runs
from ui.figures import (
    CACHE_MB,
    _cache,
    all_pitfalls,
    compare_curves,
    device_name,
    divergence_chart,
    divergence_heatmap,
    gradient_figures,
    keras_code,
    loss_chart,
    model_dot,
    of_runs,
    overlay_figure,
    param_bars,
    param_report,
    tensor_views,
    weight_histograms,
)
from ui.kept import (
    MAX_SHOWN,
    WORKSPACE_COOKIE,
    adopt_shared,
    kept_runs,
    load_kept,
    run_store,
    share_path,
    shown_runs,
    store_problem,
    workspace,
)
from ui.kept_views import compare_charts, kept_runs_editor
from ui.keys import (
    CONFIG,
    CURRENT_RUN_ID,
    DRAFT,
    DRAFT_VERSION,
    KEEP_NOTES,
    LAST_SETTINGS,
    PRESENTER,
    PRESET,
    RESULT,
    RUN,
    RUN_ERROR,
    SCRIPT_RUNS,
    SHARED,
    SHOWN,
    SPEC,
    STORE_ERROR,
    URL_WARNINGS,
    WORKSPACE,
    WORKSPACE_NEW,
)
from ui.routing import frame, run_page
from ui.sitemap import FAMILIES, PAGES, navigation_pages
from ui.startup import (
    _LOADER,
    IGNORED_SETTINGS,
    _keep_keras_session_while_training,
    start_loading_tensorflow,
    tensorflow_or_status,
)
from ui.state import (
    check_spec,
    config,
    load_experiment,
    load_preset,
    preset_name,
    reset_to_preset,
    set_config,
    set_spec,
    spec,
    sync_url,
)
from ui.text import WORD_JOINER, plain
from ui.training import (
    active_run,
    collect_run,
    continue_problem,
    continue_training,
    need_result,
    queue_text,
    result,
    start_training,
    stop_training,
    training_warnings,
    wait_for_run,
)
from ui.widgets import (
    chart,
    learning_rate_picker,
    presenter_mode,
    stack_columns_when_narrow,
    tensor_picker,
    uses_of,
)
