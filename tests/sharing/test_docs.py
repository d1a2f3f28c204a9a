"""docs/data-formats.md documents every shared data set exactly as sharing/datasets.py specifies it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from yikatong.sharing.datasets import BY_CODE, DATASETS
from yikatong.sharing.service import format_en, markdown_columns, stored_en

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-formats.md"


def shared_section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("## Shared data sets (信息归集)")
    end = text.find("\n## ", start + 1)
    return text[start: end if end != -1 else len(text)]


def documented() -> dict[str, tuple[str, list[list[str]]]]:
    """code -> (label, table rows as cells) for every `### code — label` heading of the section."""
    out: dict[str, tuple[str, list[list[str]]]] = {}
    for block in re.split(r"\n(?=### )", shared_section()):
        heading = re.match(r"### ([a-z_]+) — (\S+)\n", block)
        if not heading:
            continue
        rows = [[c.strip() for c in line.strip().strip("|").split("|")]
                for line in block.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
        out[heading.group(1)] = (heading.group(2), rows[1:])  # without the header row
    return out


def test_every_data_set_has_a_section_and_no_other():
    assert list(documented()) == [d.code for d in DATASETS]


@pytest.mark.parametrize("code", list(BY_CODE))
def test_columns_match_the_specs(code):
    dataset = BY_CODE[code]
    label, rows = documented()[code]
    assert label == dataset.label
    expected = [[f.header, f"`{f.alias}`", "yes" if f.required else "no", format_en(f), stored_en(f), f.description]
                for f in dataset.fields]
    assert rows == expected, f"docs/data-formats.md is out of date for {code}: see markdown_columns()"
    assert markdown_columns(dataset) in shared_section()


def test_every_choice_and_length_is_in_the_docs():
    section = shared_section()
    for dataset in DATASETS:
        for f in dataset.fields:
            for choice in f.choices:
                assert choice in section
