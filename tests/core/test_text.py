"""Shapes as people type them: one parser for the Build page and the Lab."""

from __future__ import annotations

import pytest

from sharecore.core.text import parse_ints


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("10, 5", [10, 5]),
        ("[10, 5]", [10, 5]),
        ("(3, 3, 16, 16)", [3, 3, 16, 16]),
        ("28x28x3", [28, 28, 3]),
        ("28×28", [28, 28]),
        ("  7  ", [7]),
        ("4 16", [4, 16]),
        ("-1, 4", [-1, 4]),  # read as typed: the spec's own check says why a dimension must be >= 1
        ("123456789", [123456789]),
    ],
)
def test_a_shape_typed_in_any_of_the_usual_ways_is_read_as_its_numbers(text, numbers):
    assert parse_ints(text) == numbers


@pytest.mark.parametrize("text", ["", "   ", "ten", "4.5, 2", "1e3", "1234567890", "--4", "4-"])
def test_anything_but_whole_numbers_is_not_a_shape(text):
    assert parse_ints(text) is None
