"""User text is data, in a real Chromium: a name and a description from a link show as plain text.

The AppTest checks of the same finding (issue 8, finding 7: what the page sends) are in
tests/app/test_user_text.py; this one sees what Streamlit makes of the text in the browser.
"""

from __future__ import annotations

import dataclasses

import pytest

import sharecore
from sharecore.share import urlstate
from tests.support.browser import goto

pytestmark = pytest.mark.browser
BASE = sharecore.preset("seed-dense")


def test_a_link_with_markdown_shows_plain_text_in_chromium_with_no_link_image_icon_or_request(new_tab, server) -> None:
    """What the AppTest checks cannot see: Streamlit rewrites text after parsing Markdown."""
    app = server
    page = new_tab()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    name = "![](http://127.0.0.1:9/p.png) [a](http://x.y) :red[r] :material/home: a@b.c"
    description = (
        "# Heading\n- [link](http://x.example) <img src=x onerror=alert(1)>\n"
        "**bold** :smile: :streamlit: www.x.y $x^2$ a -> b https://x.example\n"
        "![](http://127.0.0.1:9/pixel.png?leak=1)"
    )
    spec = dataclasses.replace(BASE, name=name, description=description)

    goto(page, app, "home", f"preset=seed-dense&spec={urlstate.encode_spec(spec)}")
    main = page.locator('[data-testid="stMain"]')
    heading = main.locator("h3").filter(has_text="Current model")
    heading.wait_for()
    caption = main.locator('[data-testid="stCaptionContainer"]').filter(has_text="Heading")

    assert heading.inner_text().replace("\u2060", "") == f"Current model: {name}"
    assert caption.inner_text().replace("\u2060", "") == description
    for element in (heading, caption):  # a heading's own '#...' anchor is the only link
        assert all(a.get_attribute("href").startswith("#") for a in element.locator("a").all()), element
    for markup in ("img", "strong", "h1", "li", "[data-testid='stIconMaterial']", "span[style*='color']"):
        assert heading.locator(markup).count() == 0, markup
        assert caption.locator(markup).count() == 0, markup
    assert not [url for url in requested if not url.startswith(app.url)]
