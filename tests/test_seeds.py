"""docs/seeds.md and the package's copy (convzoo/seeds.py) agree; every zoo entry's row exists."""
import re

from convzoo import describe, zoo
from convzoo.seeds import SEEDS
from conftest import ROOT

FIELDS = ("system", "notes", "architecture", "recipe", "figure")


def doc_rows():
    rows = {}
    for line in (ROOT / "docs" / "seeds.md").read_text(encoding="utf-8").splitlines():
        if re.match(r"\| S\d+ \|", line):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = dict(zip(FIELDS, cells[1:], strict=True))
    return rows


def test_package_table_matches_docs_word_for_word():
    assert list(doc_rows()) == [f"S{i}" for i in range(1, 13)]
    assert doc_rows() == SEEDS


def test_every_entry_cites_a_row_that_exists():
    for name in zoo.list_models():
        source = zoo.get_spec(name).source
        if source.startswith("S"):
            row_id, _, row = describe.seed_row(source)
            assert row is not None and row_id in SEEDS, (name, source)
    assert describe.seed_row("S3+")[1].startswith("convzoo's improved design")
    assert describe.seed_row("S11*")[0] == "S11" and describe.seed_row("R1")[2] is None
