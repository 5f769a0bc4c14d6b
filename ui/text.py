"""User text on a page: shown as written, never as Markdown, a link or an icon."""

from __future__ import annotations

import re

# Every character Streamlit's Markdown parser gives a meaning: emphasis, code, links and
# images (`![](http://...)` made the browser fetch an external image), HTML, tables, math,
# entities, directives (`:red[...]`) and, at the start of a line, headings, lists, quotes
# and rules. CommonMark lets any ASCII punctuation be escaped with a backslash, and the
# reader sees the character itself.
_MARKDOWN_SIGNIFICANT = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>$:&@=])")
# After parsing, where a backslash no longer counts, Streamlit rewrites the text itself: it
# links `http://...`, `www.` and e-mail addresses, draws `:material/icon:`, `:streamlit:`
# and `:emoji:`, and turns ` -> `, ` -- `, ` <= ` into arrows and dashes (checked in
# Chromium: escaped URLs still became links). A WORD JOINER (U+2060: invisible, never a line
# break) inside each such pattern stops the rewrite and leaves the text as the reader sees it.
_REWRITTEN = re.compile(r"(?<=:)(?=\S)|(?=@)|(?i:(?<=www)(?=\.))|(?<=[-<>=~])(?=[-<>=~])")
WORD_JOINER = "\u2060"


def plain(text: str) -> str:
    """User text (a spec's name or description, an error quoting it) for any element that renders
    Markdown (markdown, caption, subheader, info, warning, error, labels and help): shown as
    written, never as markup, a link or an icon."""
    lines = [
        _MARKDOWN_SIGNIFICANT.sub(r"\\\1", _REWRITTEN.sub(WORD_JOINER, line.strip())) for line in str(text).split("\n")
    ]
    # Leading spaces would make an indented code block; a hard break keeps the user's lines.
    return "  \n".join(lines)
