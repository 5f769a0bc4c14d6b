"""Helpers the tests share: a test module never imports another test module, it imports these.

- `server`: the one Streamlit server launcher and Chromium's launch flags (bench uses them too);
- `browser`: waiting for and reading the app in Chromium (pages, reruns, charts, screenshots);
- `apptest`: the app through Streamlit's AppTest (open a page, read its figures, train until done);
- `hostile`: user text that must stay data (markup, encoding cookies, surrogates);
- `codegen`: running and linting the Keras scripts that sharecore writes;
- `store`: hand-made runs for the run store and comparing results;
- `postgres`: a throwaway PostgreSQL cluster, one per test process, a schema per test;
- `ties`: `assert_tie_holds`, the harness every weight-sharing family's build test calls;
- `runs`: tiny training runs trained once per test process and shared (the `tiny_run` fixture);
- `users`: running a command or a test as another user (a server that is not root).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
