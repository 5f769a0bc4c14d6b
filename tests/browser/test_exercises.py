"""Each kind of exercise set-up in a real browser: Set up lands on the page and tab the exercise's first
look names, and the exercise's question stays on screen beside the work."""

from __future__ import annotations

from sharecore.teach.exercises import exercise
from tests.support.browser import live, wait_for_page


def set_up(page, server, exercise_id: str, title: str) -> None:
    page.goto(f"{server.url}/exercises")
    wait_for_page(page, "Exercises")
    # .first: Streamlit draws a button with a help tooltip twice (one of them hidden).
    live(page, f".st-key-exercises-setup-{exercise_id} button").first.click()
    wait_for_page(page, title)


def test_set_up_opens_build_on_the_parameters_tab_with_the_exercise_beside_it(new_tab, server):
    page = new_tab()
    set_up(page, server, "partial-sharing", "Build")  # its first look: Build, tab Parameters
    assert page.get_by_role("tab", selected=True).inner_text().strip() == "Parameters"
    assert "partial-share" in live(page, ".st-key-exercise-panel").inner_text()
    assert page.locator('[role="tabpanel"]:visible [data-testid="stMetric"]').count() == 3  # tied, untied, saved


def test_set_up_opens_the_lab_with_the_question_beside_the_train_button(new_tab, server):
    page = new_tab()
    ex = exercise("siamese-generalisation")
    set_up(page, server, ex.id, "Lab")
    panel = live(page, ".st-key-exercise-panel")
    assert "is the larger" in panel.inner_text() and panel.is_visible()
    assert page.get_by_role("button", name="Train").first.is_visible()
    # Beside, not above: the panel and the Train button share the controls column.
    assert live(page, ".st-key-lab-controls .st-key-exercise-panel").count() == 1
