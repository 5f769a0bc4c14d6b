"""The Your model page in Chromium: a .keras file chosen in the browser's file input is inspected and shown.

The page's logic, refusals and escaping are tested through AppTest in tests/app/test_your_model.py; this
one checks what AppTest cannot: Streamlit's real upload route (its size cap included) and the drawn page.
"""

from __future__ import annotations

import pytest

from sharecore.nn.tfimport import keras
from tests.support.browser import CHART, assert_no_exception, goto, metric, snap, wait_for_charts, wait_until_idle

pytestmark = pytest.mark.browser


def test_a_keras_file_chosen_in_the_browser_shows_its_uses_counts_and_split(
    new_tab, server, tmp_path, screenshots
) -> None:
    block = keras.layers.Dense(4, name="block")
    inp = keras.Input((4,))
    path = tmp_path / "twice.keras"
    keras.Model(inp, block(block(inp))).save(path)

    page = new_tab()
    goto(page, server, "your_model")
    page.locator('.st-key-your_model-upload input[type="file"]').set_input_files(str(path))
    page.locator(CHART).first.wait_for()
    wait_until_idle(page)
    wait_for_charts(page, 1)
    assert_no_exception(page)
    assert metric(page, "Parameters stored") == "20"
    assert metric(page, "If every use had its own copy") == "40"
    assert metric(page, "The tie saves") == "20"
    assert page.get_by_text("twice.keras").count() >= 1
    snap(page, screenshots, "your_model")
