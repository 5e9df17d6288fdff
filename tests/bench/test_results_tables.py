"""docs/results.md and the README's figures are generated from docs/results/*.json."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("results_tables", ROOT / "bench/results_tables.py")
tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tables)


@pytest.mark.parametrize("page", tables.PAGES, ids=lambda path: path.name)
def test_pages_equal_what_the_json_generates(page):
    text = page.read_text(encoding="utf-8")
    assert tables.BLOCK.search(text), f"{page} has no generated block"
    assert tables.stale_blocks(text) == [], "run python bench/results_tables.py"


def test_every_table_on_the_results_page_is_generated():
    page = tables.PAGES[0].read_text(encoding="utf-8")
    outside = tables.BLOCK.sub("", page)
    assert not re.findall(r"^\|.*\|$", outside, flags=re.M)


def test_a_changed_number_makes_the_page_stale(tmp_path):
    results = shutil.copytree(tables.RESULTS_DIR, tmp_path / "results")
    path = results / "student-throughput-cpu.json"
    data = json.loads(path.read_text())
    data["rows"][0]["steps_per_s_none"] = 99.99
    path.write_text(json.dumps(data))
    page = tables.PAGES[0].read_text(encoding="utf-8")
    assert tables.stale_blocks(page, results) == ["student-throughput"]
    assert "99.99" in tables.render(page, results)


def test_every_result_says_where_it_came_from():
    for path in sorted(tables.RESULTS_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        records = [data[key] for key in ("lambda_sweep", "table2") if key in data] or [data]
        for record in records:
            assert {"command", "commit", "machine", "reproducible"} <= set(record), path.name
            if not record["reproducible"]:
                assert record["provenance"], path.name


def test_tables_without_data_behind_them_are_flagged():
    page = tables.PAGES[0].read_text(encoding="utf-8")
    for match in tables.BLOCK.finditer(page):
        body = match["body"]
        assert (
            "Command: `" in body
            or "**Not reproducible data**" in body
            or ("**Published figures" in body)
        ), match["name"]


def test_an_unknown_block_name_fails():
    with pytest.raises(SystemExit, match="unknown results block 'nope'"):
        tables.render("<!-- results: nope -->\n<!-- /results -->\n")
