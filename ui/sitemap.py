"""The app's pages: their files, titles and icons (the router and every link to a page read them here)."""

from __future__ import annotations

import streamlit as st

PAGES = {
    "home": "pages/home.py",
    "lab": "pages/lab.py",
    "compare": "pages/compare.py",
    "exercises": "pages/exercises.py",
    "room": "pages/room.py",
    "build": "pages/build.py",
    "train": "pages/train.py",
    "gradients": "pages/gradients.py",
    "divergence": "pages/divergence.py",
    "pitfalls": "pages/pitfalls.py",
    "your_model": "pages/your_model.py",
}
# page -> (title in the navigation, icon); the URL of a page is its file's name. Emoji, not
# Material icons: Streamlit makes the open page's icon the tab's favicon, and for a Material icon it
# fetches that icon from fonts.gstatic.com (a request to a third party per visitor, and a broken icon
# offline); an emoji favicon is drawn from an inline SVG.
_NAVIGATION = {
    "home": ("Home", "🏠"),
    "lab": ("Lab", "🧪"),
    "compare": ("Compare runs", "📈"),
    "exercises": ("Exercises", "🎓"),
    "room": ("Room", "👥"),
    "build": ("Build", "🛠️"),
    "train": ("Train", "▶️"),
    "gradients": ("Gradient flow", "🔀"),
    "divergence": ("Divergence", "↔️"),
    "pitfalls": ("Pitfalls", "⚠️"),
    "your_model": ("Your model", "🔍"),
}


def navigation_pages() -> list[st.Page]:
    """The app's pages for `st.navigation`, Home first and default."""
    return [
        st.Page(PAGES[name], title=title, icon=icon, default=name == "home")
        for name, (title, icon) in _NAVIGATION.items()
    ]
