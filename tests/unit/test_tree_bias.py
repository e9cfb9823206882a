"""The pure parts of the tree-bias control (load/tree_bias.py) and of profile_worker_calls.py
--base: naming and ordering the processes of each tree, the summary's pairs and ratios, and
rows of the same code run from two folders compared by function, not by path. No processes."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bias(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.syspath_prepend(str(ROOT / "load"))
    import tree_bias
    return tree_bias


@pytest.fixture
def calls(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.syspath_prepend(str(ROOT / "load"))
    import profile_worker_calls
    return profile_worker_calls


def test_copies_name_each_process_and_start_a_tree_after_the_others(bias):
    found = {"work": Path("/w"), "export": Path("/e")}
    assert list(bias.copies(found, 2, "work-first")) == ["work", "export", "work#2", "export#2"]
    assert bias.copies(found, 2, "work-first")["export#2"] == Path("/e")
    assert list(bias.copies(found, 1, "export-first")) == ["export", "work"]


def rounds(worker: list[float], host: list[float]) -> dict:
    return {"rounds": [{"worker_us_per_chunk": w, "host_us_per_chunk": h}
                       for w, h in zip(worker, host, strict=True)]}


def test_the_summary_counts_the_pairs_a_tree_was_lower_in_and_its_worker_over_host(bias):
    rows = {"work": rounds([100, 110, 120], [50, 50, 60]),
            "export": rounds([90, 115, 100], [50, 50, 50])}
    text = bias.summary(rows)
    work, export = (line for line in text.splitlines() if line.startswith(("| work",
                                                                           "| export")))
    assert "| 110 | 50 | 2.00 | - |" in work  # medians; worker/host median of 2.0, 2.2, 2.0
    assert "| 100 | 50 | 2.00 | 2 of 3 |" in export  # 90 < 100, 115 > 110, 100 < 120


def test_differences_put_the_functions_that_differ_most_first(bias):
    rows = {"work": {"by_function": {"a.py:1(f)": 2.0, "b.py:1(g)": 5.0}},
            "export": {"by_function": {"a.py:1(f)": 2.0, "b.py:1(g)": 4.0, "c.py:1(h)": 0.5}}}
    lines = bias.differences(rows).splitlines()
    assert "work vs export" in lines[1]
    assert lines[2].endswith("b.py:1(g)") and lines[3].endswith("c.py:1(h)")


def test_rows_of_the_export_meet_the_working_trees_rows_by_module_not_by_folder(calls):
    gateway = {"function_app/app.py:10(handle)": (2.0, 30.0),
               "~:0(<built-in method __new__ of type object at 0x7f11aa)": (1.0, 2.0)}
    base = {"/tmp/worker-calls-x/base/function_app/app.py:10(handle)": (2.0, 28.0),
            "~:0(<built-in method __new__ of type object at 0x7f22bb)": (1.5, 2.0)}
    lines = calls.differing(gateway, base, "gateway base", top=5)
    assert lines[1] == "calls/req gateway, gateway base; own us/req gateway, gateway base:"
    rows = {line.rsplit("  ", 1)[1]: line for line in lines[2:]}
    assert set(rows) == {"function_app/app.py:10(handle)",
                         "~:0(<built-in method __new__ of type object)"}
    assert rows["~:0(<built-in method __new__ of type object)"].split()[:2] == ["1.00", "1.50"]


def test_the_ten_line_function_is_compared_by_its_own_paths(calls):
    lines = calls.differing({"function_app/app.py:10(handle)": (2.0, 30.0)},
                            {"main.py:12(proxy)": (1.0, 5.0)}, "ten-line", top=5)
    assert any(line.endswith("function_app/app.py:10(handle)") for line in lines)
    assert any(line.endswith("main.py:12(proxy)") for line in lines)
