"""The report as a document of blocks (paragraphs, facts, tables, images), rendered to Markdown
or to plain text with aligned columns."""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field

TEXT_WIDTH = 100


@dataclass
class Facts:
    """Named values, one a line."""

    items: list[tuple[str, str]]


@dataclass
class Table:
    """A table of pre-formatted cells; `align` has one 'l' or 'r' per column."""

    headers: list[str]
    rows: list[list[str]]
    align: str

    def __post_init__(self) -> None:
        widths = {len(self.headers), len(self.align), *map(len, self.rows)}
        if len(widths) != 1:  # Markdown renders a table only when every row has the header's width
            raise ValueError(f"table {self.headers}: {len(self.align)} alignments and rows of "
                             f"{sorted(map(len, self.rows))} cells for {len(self.headers)} headers")


@dataclass
class Image:
    """A plot in the run directory, by its path relative to the report."""

    path: str
    caption: str


Block = str | Facts | Table | Image


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    sections: list[Section]


def num(value: float | int | None, spec: str = ".4f") -> str:
    """`value` formatted with `spec`; '-' for a missing or NaN value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def to_markdown(doc: Document) -> str:
    parts = [f"# {doc.title}"]
    for section in doc.sections:
        parts.append(f"## {section.title}")
        parts += [_markdown_block(block) for block in section.blocks]
    return "\n\n".join(parts) + "\n"


def to_text(doc: Document) -> str:
    parts = [f"{doc.title}\n{'=' * len(doc.title)}"]
    for section in doc.sections:
        parts.append(f"{section.title}\n{'-' * len(section.title)}")
        parts += [_text_block(block) for block in section.blocks]
    return "\n\n".join(parts) + "\n"


def _markdown_block(block: Block) -> str:
    if isinstance(block, Facts):
        return "\n".join(f"- {name}: {value}" for name, value in block.items)
    if isinstance(block, Table):
        def row(cells: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        rule = "|" + "|".join("---:" if a == "r" else ":---" for a in block.align) + "|"
        return "\n".join([row(block.headers), rule, *map(row, block.rows)])
    if isinstance(block, Image):
        return f"![{block.caption}]({block.path})"
    return block


def _text_block(block: Block) -> str:
    if isinstance(block, Facts):
        width = max(len(name) for name, _ in block.items)
        return "\n".join(f"{name + ':':<{width + 1}}  {value}" for name, value in block.items)
    if isinstance(block, Table):
        widths = [max(len(cells[i]) for cells in [block.headers, *block.rows])
                  for i in range(len(block.headers))]

        def row(cells: list[str]) -> str:
            return "  ".join(c.rjust(w) if a == "r" else c.ljust(w)
                             for c, w, a in zip(cells, widths, block.align)).rstrip()

        return "\n".join([row(block.headers), "  ".join("-" * w for w in widths),
                          *map(row, block.rows)])
    if isinstance(block, Image):
        return f"Plot: {block.path} ({block.caption})"
    return textwrap.fill(block, TEXT_WIDTH)
