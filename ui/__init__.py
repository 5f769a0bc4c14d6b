"""What every page shares: the session's experiment, the sidebar, the training run and cached calls.

Lives outside pages/ so that Streamlit never lists it as a page.

All per-user state lives in `st.session_state` (one per browser tab), so two users of one
server never see each other's models or runs. Pure results are cached in one byte-bounded
cache (`ui.figures`); nothing is put in `st.cache_resource`, which every user of a hosted app shares.

The modules, bottom to top (each imports only those above it in this list), and the pages import
what they use from them:

    keys, text, cache, sitemap   session and widget keys, user text, the byte-bounded cache, the pages
    startup                      TensorFlow loaded and warmed up, Keras's clean-up, server settings
    state                        the experiment: preset, spec, settings, draft, URL
    presenter                    presenter mode: one stylesheet for every page
    widgets, figures             small shared widgets; cached pure calls
    exercise                     the exercise set up last: Set up, and its panel beside the work
    kept, kept_views             the workspace, run store, current result and kept runs; their charts,
                                 table and share links
    own_model                    an uploaded .keras model inspected safely (beside kept, neither imports the other)
    training                     the session's run: start, stop, continue, collect, wait
    settings_editor              the training settings of the Lab and the Train page
    sidebar                      the controls every page shares
    routing                      the router's last step and `frame()`, every page's first call

A session key has one writer, named beside it in `keys`: a page changes another module's state
only through that module's functions.
"""
