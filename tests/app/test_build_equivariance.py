"""The Build page's Equivariance tab: only for a spec with turned or flipped uses; at the start tied and
untied both move their maps exactly, after a run of that model the untied copies no longer do."""

from __future__ import annotations

import json

from tests.support.apptest import click_and_wait, go, open_app


def equivariance_chart(at) -> dict | None:
    found = [el for el in at.get("plotly_chart") if el.proto.id.endswith("-build.equivariance")]
    return json.loads(found[0].proto.spec) if found else None


def verdicts(fig: dict) -> str:
    return fig["layout"]["title"]["subtitle"]["text"]


def test_the_equivariance_tab_shows_tied_exact_and_untied_drifting_once_trained():
    at = open_app("build", preset="seed-conv")
    assert "Equivariance" not in [t.label for t in at.tabs] and equivariance_chart(at) is None

    at = open_app("build", preset="rotation-tied-conv", steps="20")
    assert not at.exception, at.exception
    assert "Equivariance" in [t.label for t in at.tabs]
    start = verdicts(equivariance_chart(at))
    assert "Tied: same (" in start and "untied: same (" in start, start  # untied copies start as the same turns
    go(at, "lab")
    click_and_wait(at, "lab.train")
    go(at, "build")
    trained = verdicts(equivariance_chart(at))
    assert "Tied: same (" in trained and "untied: off by" in trained, trained
    assert any("step 20" in c.value for c in at.caption)
