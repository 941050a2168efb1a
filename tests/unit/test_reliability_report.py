"""bench/reliability.py: parsing pytest output, rendering the figures, rewriting the doc block."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "reliability.py"


def load_script() -> ModuleType:
    # bench/ is not a package: load the script as a module (registered first, for dataclasses).
    spec = importlib.util.spec_from_file_location("bench_reliability", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


rel = load_script()

# The shape of `pytest -s -v` output, trimmed from a real run (plus a failure).
VERBOSE_LOG = """\
============================= test session starts ==============================
collecting ... collected 5 items

tests/faults/test_fault_memory.py::test_m1_noeviction_full_store_gives_503
FIGURE M1 maxmemory=2mb full_status=503 full_seconds=0.005 loading_seen=True
PASSED
tests/faults/test_fault_memory.py::test_m1_one_outage
FIGURE M1-log refused_changes=5 warnings=6
XFAIL
tests/adapters/test_concurrency.py::test_k1_asgi_50_parallel_writes PASSED
tests/adapters/test_behaviour.py::test_cookie[asgi]
FIGURE I4 kind=asgi seconds_per_request=0.002 statuses=200|503 note=two words
FAILED
tests/faults/test_fault_pauses.py::test_f5_sleep
FIGURE F5-sleep max_seconds=1.070 slept_seconds=2.001 read_seconds=0.004/0.008
PASSED

=========================== short test summary info ============================
FAILED tests/adapters/test_behaviour.py::test_cookie[asgi] - AssertionError: boom
XFAIL tests/faults/test_fault_memory.py::test_m1_one_outage - known
================== 1 failed, 3 passed, 1 xfailed in 5.85s ==================
"""

QUIET_LOG = """\
tests/faults/test_fault_persistence.py
FIGURE F1 appendfsync=always acknowledged_lost=0
.
2 passed in 3.10s
"""

DOC = """\
# Reliability

Intro text.

<!-- figures:start -->
| old | table |
<!-- figures:end -->

After the block.
"""


def test_figures_are_attributed_to_the_test_that_printed_them() -> None:
    report = rel.parse_log(VERBOSE_LOG)
    # pytest -v ends a node id line with a space when the test prints something.
    assert rel.parse_log(VERBOSE_LOG.replace("\nFIGURE", " \nFIGURE")) == report
    assert [(f.case, f.test) for f in report.figures] == [
        ("M1", "tests/faults/test_fault_memory.py::test_m1_noeviction_full_store_gives_503"),
        ("M1-log", "tests/faults/test_fault_memory.py::test_m1_one_outage"),
        ("I4", "tests/adapters/test_behaviour.py::test_cookie[asgi]"),
        ("F5-sleep", "tests/faults/test_fault_pauses.py::test_f5_sleep"),
    ]
    assert report.figures[0].values == (
        ("maxmemory", "2mb"),
        ("full_status", "503"),
        ("full_seconds", "0.005"),
        ("loading_seen", "True"),
    )
    assert report.figures[2].values[-1] == ("note", "two words")
    assert report.outcomes == {
        "tests/faults/test_fault_memory.py::test_m1_noeviction_full_store_gives_503": "PASSED",
        "tests/faults/test_fault_memory.py::test_m1_one_outage": "XFAIL",
        "tests/adapters/test_concurrency.py::test_k1_asgi_50_parallel_writes": "PASSED",
        "tests/adapters/test_behaviour.py::test_cookie[asgi]": "FAILED",
        "tests/faults/test_fault_pauses.py::test_f5_sleep": "PASSED",
    }
    assert report.failed() == ["tests/adapters/test_behaviour.py::test_cookie[asgi]"]
    assert report.result == "1 failed, 3 passed, 1 xfailed in 5.85s"


def test_a_teardown_error_after_a_pass_counts_as_the_outcome() -> None:
    log = "tests/a.py::test_x PASSED\ntests/a.py::test_x ERROR\n"
    assert rel.parse_log(log).outcomes == {"tests/a.py::test_x": "ERROR"}


def test_values_split_on_spaces_and_keep_words_without_equals_sign() -> None:
    assert rel.parse_values(" a=1 b=x y c= d=k=v") == (
        ("a", "1"),
        ("b", "x y"),
        ("c", ""),
        ("d", "k=v"),
    )


def test_rows_are_readable_and_mark_tests_that_did_not_pass() -> None:
    report = rel.parse_log(VERBOSE_LOG)
    lines = rel.render_table(report.figures, report.outcomes).splitlines()
    assert lines[:2] == ["| case | test | figures |", "| --- | --- | --- |"]
    assert lines[2] == (
        "| `M1` | `tests/faults/test_fault_memory.py::test_m1_noeviction_full_store_gives_503` "
        "| maxmemory: 2mb, full status: 503, full: 0.005 s, loading seen: yes |"
    )
    assert lines[3].startswith(
        "| `M1-log` | `tests/faults/test_fault_memory.py::test_m1_one_outage` (xfail) |"
    )
    # A "|" in a value would split the markdown cell.
    assert lines[4].endswith(
        "| kind: asgi, per request: 0.002 s, statuses: 200\\|503, note: two words |"
    )
    assert "(failed)" in lines[4]
    assert lines[5].endswith("| max: 1.070 s, slept: 2.001 s, read: 0.004/0.008 s |")
    assert len(lines) == 2 + len(report.figures)


def test_without_node_ids_the_test_column_is_left_out() -> None:
    report = rel.parse_log(QUIET_LOG)
    assert [(f.case, f.test) for f in report.figures] == [("F1", None)]
    assert report.result == "2 passed in 3.10s"
    assert rel.render_table(report.figures, report.outcomes).splitlines() == [
        "| case | figures |",
        "| --- | --- |",
        "| `F1` | appendfsync: always, acknowledged lost: 0 |",
    ]


def test_the_block_between_the_markers_is_replaced_and_nothing_else(tmp_path: Path) -> None:
    doc = tmp_path / "reliability.md"
    doc.write_text(DOC)
    once = rel.replace_section(doc.read_text(), "| new | table |\n")
    assert once == DOC.replace("| old | table |", "| new | table |")
    assert rel.replace_section(once, "| new | table |") == once  # idempotent


@pytest.mark.parametrize(
    "doc",
    [
        "no markers at all\n",
        "<!-- figures:start -->\nonly the start\n",
        "<!-- figures:end -->\n<!-- figures:start -->\n",
        "<!-- figures:start -->\n<!-- figures:end -->\n"
        "<!-- figures:start -->\n<!-- figures:end -->\n",
    ],
)
def test_missing_or_misplaced_markers_are_refused(doc: str) -> None:
    with pytest.raises(rel.ReportError, match="figures:start"):
        rel.replace_section(doc, "x")


def env(result: str | None = None) -> object:
    return rel.Environment(
        date="2026-11-24 00:40 UTC",
        server="valkey-server 8.1.8",
        python="3.11.7",
        redis_py="8.1.0",
        cpus="2",
        command="python -m pytest tests/faults -s -v",
        result=result,
    )


def test_the_section_names_date_versions_cpus_and_command() -> None:
    section = rel.render_section(rel.parse_log(QUIET_LOG), env("2 passed in 3.10s"))
    assert (
        "Measured 2026-11-24 00:40 UTC with valkey-server 8.1.8, Python 3.11.7, "
        "redis-py 8.1.0, 2 CPUs.\nCommand: `python -m pytest tests/faults -s -v`. "
        "Result: 2 passed in 3.10s."
    ) in section
    assert section.endswith("| `F1` | appendfsync: always, acknowledged lost: 0 |")


def test_no_figure_is_an_error() -> None:
    with pytest.raises(rel.ReportError, match="no FIGURE line"):
        rel.render_section(rel.parse_log("tests/a.py::test_x PASSED\n"), env())


def run_main(tmp_path: Path, log: str, doc: str, *options: str) -> tuple[int, str]:
    (tmp_path / "pytest.log").write_text(log)
    (tmp_path / "doc.md").write_text(doc)
    status = rel.main(
        ["--from-log", str(tmp_path / "pytest.log"), "--doc", str(tmp_path / "doc.md"), *options]
    )
    return status, (tmp_path / "doc.md").read_text()


def test_main_publishes_a_log_into_the_doc(tmp_path: Path) -> None:
    status, doc = run_main(tmp_path, QUIET_LOG, DOC)
    assert status == 0
    assert "| old | table |" not in doc
    assert doc.startswith("# Reliability\n\nIntro text.\n\n<!-- figures:start -->\n")
    assert doc.endswith("<!-- figures:end -->\n\nAfter the block.\n")
    assert f"Command: `bench/reliability.py --from-log {tmp_path / 'pytest.log'}`" in doc
    assert "| `F1` | appendfsync: always, acknowledged lost: 0 |" in doc


def test_main_leaves_the_doc_alone_when_tests_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, doc = run_main(tmp_path, VERBOSE_LOG, DOC)
    assert (status, doc) == (1, DOC)
    error = capsys.readouterr().err
    assert "tests failed" in error and "test_cookie[asgi]" in error
    status, doc = run_main(tmp_path, VERBOSE_LOG, DOC, "--allow-failures")
    assert status == 0 and "(failed)" in doc


@pytest.mark.parametrize(
    ("log", "doc", "message"),
    [
        ("tests/a.py::test_x PASSED\n1 passed in 0.1s\n", DOC, "no FIGURE line"),
        (QUIET_LOG, "# no markers\n", "needs exactly one <!-- figures:start -->"),
    ],
)
def test_main_fails_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], log: str, doc: str, message: str
) -> None:
    status, after = run_main(tmp_path, log, doc)
    assert (status, after) == (1, doc)
    assert message in capsys.readouterr().err
