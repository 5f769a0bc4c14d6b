"""User text that must stay data: markup in a name or description, encoding cookies that would turn
a description into code in an exported script, and characters the spec refuses."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import sharecore
from sharecore.core.spec import ModelSpec

BASE = sharecore.preset("seed-dense")


def marker_payload(marker: Path) -> str:
    """Printable text that unicode_escape decoding turns into a line of code creating `marker`."""
    return f"ok \\u000aopen({str(marker)!r}, 'w').write('pwned')  # "


def forced(spec: ModelSpec, **text: str) -> ModelSpec:
    """`spec` with name/description set past the spec's own checks.

    The code generator must not rely on the spec boundary: these are the characters it refuses.
    """
    out = dataclasses.replace(spec)
    for field, value in text.items():
        object.__setattr__(out, field, value)
    return out


def hostile_codegen_cases(marker: Path) -> dict[str, ModelSpec]:
    payload = marker_payload(marker)
    valid = {  # the spec accepts all of these
        "unicode_escape cookie": {"name": "x coding: unicode_escape", "description": payload},
        "raw_unicode_escape cookie": {"name": "x coding=raw_unicode_escape", "description": payload},
        "utf-7 cookie": {"name": "coding:utf-7", "description": "+AAo-open('x', 'w')"},
        "emacs form": {"name": "-*- coding: latin-1 -*-", "description": payload},
        "vim form": {"name": "vim: set fileencoding=unicode_escape :", "description": payload},
        "cookie in the description": {"name": "plain", "description": f"# -*- coding: unicode_escape -*-\n{payload}"},
        "long name wrapping onto line 2": {"name": "a " * 28 + "x coding: unicode_escape", "description": payload},
        "long word cut before a modeline": {"name": "x" * 70 + " vim:", "description": "y" * 86 + "vim:set x"},
        "surrogate-free weird unicode": {
            "name": "Ünï ½ ² 𝔘 \u202e evil \u200d ﷽ 中文 \ufeff",
            "description": "tab\there\nemoji 👩\u200d💻, RTL \u202b abc \u202c, combining e\u0301, nbsp\xa0x",
        },
    }
    specs = {case: ModelSpec.from_dict(BASE.to_dict() | text) for case, text in valid.items()}
    refused = {  # line breaks and controls the spec refuses; the generator copes anyway
        "carriage return": {"name": "a\rcoding: unicode_escape", "description": f"b\r{payload}"},
        "form feed and vertical tab": {"name": "a\x0c\x0bb", "description": f"\x0c{payload}\x0b"},
        "U+2028 and U+2029": {"name": "a\u2028coding: unicode_escape", "description": f"\u2029{payload}"},
        "NUL": {"name": "a\x00b", "description": "c\x00d"},
        "file separators and NEL": {"name": "a\x1c\x1d\x1e\x85b", "description": f"\x85{payload}"},
        "lone surrogate": {"name": "a\ud800b", "description": "\udfff"},
    }
    specs |= {case: forced(BASE, **text) for case, text in refused.items()}
    return specs


# Markdown, HTML and Streamlit's own syntax in a name and a description (issue 8, finding 7).
MD_NAME = "![](http://127.0.0.1:9/p.png?leak=1) [a](http://x.y) :red[r] :material/home:"
MD_DESCRIPTION = (
    "# Heading\n- item\n    indented code\n<img src=x onerror=alert(1)>\n"
    "**bold** `code` $x^2$ ~~s~~ | a | b |\nwww.x.example a@x.example https://x.example :smile: \\*\n"
    "![](http://127.0.0.1:9/pixel.png?leak=1)"
)
HOSTILE = dataclasses.replace(BASE, name=MD_NAME, description=MD_DESCRIPTION)


# Run labels that would be paths, or clash, if a label named a file or folder (a TensorBoard zip's run folders).
PATH_LABELS = (
    "../../etc/passwd",
    "/etc/passwd",
    "C:\\Windows\\system32",
    "..",
    ".",
    "",
    "   ",
    "CON",
    "nul.txt",
    ".hidden",
    "-rf",
    "a\x00b\nc\rd",
    "\u202eevil\u202c",
    "Ünï 中文 👩\u200d💻",
    "x" * 300,
    "lr 0.1",
    "LR 0.1",  # the same folder on a case-insensitive disk
    "lr/0.1",
)
