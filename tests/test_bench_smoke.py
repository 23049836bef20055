"""Smoke test of the benchmark suite: ``file-backed bench --smoke`` runs every
workload once at tiny sizes and writes its JSON report. No timing assertions:
the figures of a smoke run mean nothing, only that every workload ran."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from file_backed.cli import main
from file_backed.cli.bench import WORKLOAD_NAMES, load_runner

pytest.importorskip("numpy")


def test_cli_names_match_the_suite() -> None:
    assert WORKLOAD_NAMES == load_runner().NAMES


def test_targets_compare_the_right_figure() -> None:
    common = pytest.importorskip("file_backed_benchmarks.common")
    faster = common.Row(
        "x",
        "reads/s",
        "/s",
        (300.0,),
        other_name="peer",
        other_runs=(100.0,),
        target=common.Target("ratio", ">=", 1.5, ">= 1.5x peer"),
    )
    assert faster.ratio == 3.0 and faster.met is True
    slow = common.Row("x", "import", "ms", (200.0,), target=common.Target("value", "<=", 150.0, "<= 150 ms"))
    assert slow.ratio is None and slow.met is False
    assert common.Row("x", "m", "s", (1.0,)).met is None


def test_smoke_run_reports_every_workload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("FILE_BACKED_BENCH_DIR", str(scratch))
    report_path = tmp_path / "report.json"

    result = CliRunner().invoke(main, ["bench", "--smoke", "--json", str(report_path)])

    assert result.exit_code == 0, result.output
    assert "file_backed benchmarks, smoke mode" in result.output
    report = json.loads(report_path.read_text())
    assert report["mode"] == "smoke"
    opt_in = {workload.name for workload in load_runner().WORKLOADS if workload.opt_in}
    assert [section["name"].lower() for section in report["sections"]] == [
        name for name in WORKLOAD_NAMES if name not in opt_in
    ]
    for section in report["sections"]:
        assert section["rows"], f"{section['name']} measured nothing"
        for row in section["rows"]:
            assert row["value"] is not None and math.isfinite(row["value"]), row
            if row["other"]:  # a zero (diskcache has no hits) has no ratio
                assert math.isfinite(row["ratio"]), row
    assert list(scratch.iterdir()) == [], "scratch directories were left behind"


def test_dask_and_s3_run_only_when_named() -> None:
    opt_in = {workload.name for workload in load_runner().WORKLOADS if workload.opt_in}
    assert opt_in == {"dask", "s3"}


def test_only_runs_the_named_workloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FILE_BACKED_BENCH_DIR", str(tmp_path))
    report_path = tmp_path / "report.json"

    result = CliRunner().invoke(main, ["bench", "--smoke", "--only", "hit", "--json", str(report_path)])

    assert result.exit_code == 0, result.output
    assert [section["name"] for section in json.loads(report_path.read_text())["sections"]] == ["hit"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_mode_runs_once_with_every_peer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quick mode as a user runs it, on the workloads that compare with every
    peer (the smoke run covers every workload)."""
    for peer in ("zict", "diskcache", "cachetools"):
        pytest.importorskip(peer)
    monkeypatch.setenv("FILE_BACKED_BENCH_DIR", str(tmp_path))
    report_path = tmp_path / "report.json"

    result = CliRunner().invoke(main, ["bench", "--only", "hit", "--only", "w1", "--json", str(report_path)])

    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["mode"] == "quick"
    compared = {row["other_name"] for section in report["sections"] for row in section["rows"]}
    assert {"zict", "diskcache", "hand-written LRU", "zict buf[k]", "cachetools get"} <= compared


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_dask_and_s3_workloads_run_when_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for package in ("distributed", "s3fs", "moto.server", "file_backed_fsspec"):
        pytest.importorskip(package)
    monkeypatch.setenv("FILE_BACKED_BENCH_DIR", str(tmp_path))
    report_path = tmp_path / "report.json"

    result = CliRunner().invoke(
        main, ["bench", "--smoke", "--only", "dask", "--only", "s3", "--json", str(report_path)]
    )

    assert result.exit_code == 0, result.output
    sections = json.loads(report_path.read_text())["sections"]
    assert [section["name"] for section in sections] == ["dask", "s3"]
    rows = {(row["workload"], row["metric"]): row for section in sections for row in section["rows"]}
    assert rows["dask", "results identical"]["value"] == 1.0
    assert rows["s3", "evict+reload MB/s"]["value"] > 0
