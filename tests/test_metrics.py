"""The ``metrics`` middleware: counts, failures and latency histograms of every hook."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

import file_backed as fb
from file_backed.metrics import BUCKET_BOUNDS, HookMetrics, Metrics, find_metrics, metrics


def test_every_hook_call_is_counted() -> None:
    recorder = Metrics()
    with fb.open_store("memory", plugins=[recorder]) as store:
        key = uuid.uuid4()
        store.hook.store(key=key, data="x")
        store.hook.load(key=key)
        store.hook.load(key=key)
        store.hook.delete(key=key)
    counts = {hook: entry.calls for hook, entry in recorder.snapshot().items()}
    assert counts == {"store": 1, "load": 2, "delete": 1, "shutdown": 1}


def test_a_failing_hook_is_counted_as_an_error_and_its_exception_passes_unchanged() -> None:
    recorder = Metrics()
    with fb.open_store("memory", plugins=[recorder]) as store, pytest.raises(fb.BlobNotFoundError):
        store.hook.load(key=uuid.uuid4())
    assert (recorder.snapshot()["load"].calls, recorder.snapshot()["load"].errors) == (1, 1)


def test_results_pass_through_unchanged() -> None:
    with fb.open_store("memory", plugins=[Metrics()]) as store:
        key = uuid.uuid4()
        assert store.hook.store(key=key, data=[1, 2]) > 0
        assert store.hook.load(key=key) == [1, 2]


def test_reset_forgets_every_count() -> None:
    recorder = Metrics()
    with fb.open_store("memory", plugins=[recorder]) as store:
        store.hook.delete(key=uuid.uuid4())
        recorder.reset()
        assert recorder.snapshot() == {}


def test_enabled_by_name_it_is_the_shared_instance() -> None:
    with fb.open_store("memory", plugins=["metrics"]) as store:
        assert find_metrics(store) is metrics


def test_find_metrics_is_none_without_the_middleware() -> None:
    with fb.open_store("memory") as store:
        assert find_metrics(store) is None


@given(st.lists(st.floats(min_value=0, max_value=200, allow_nan=False), min_size=1, max_size=50))
def test_histogram_buckets_count_every_sample_and_quantiles_bound_them(samples: list[float]) -> None:
    entry = HookMetrics()
    for seconds in samples:
        entry = entry._add(seconds, failed=False)
    assert sum(entry.buckets) == entry.calls == len(samples)
    assert entry.max_seconds == max(samples)
    assert entry.quantile(1.0) == max(samples)
    assert entry.quantile(0.5) >= sorted(samples)[max(0, round(0.5 * len(samples)) - 1)]


def test_a_sample_lands_in_the_first_bucket_whose_bound_holds_it() -> None:
    entry = HookMetrics()._add(BUCKET_BOUNDS[3], failed=False)
    assert entry.buckets[3] == 1


def test_quantile_outside_zero_to_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        HookMetrics().quantile(1.5)
