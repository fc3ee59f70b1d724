"""Fuzzing every file connector with mutations of real samples (issue 21).

No exception escapes an import: each case is stored, quarantined (the report's count is in
the quarantine) or refused with a message. Derandomised, so a run is the same every time;
bench/fuzz_connectors.py runs many more cases.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elshi.connectors.base import FetchContext
from elshi.db import Database
from elshi.settings import Settings
from tests.reliability.fuzzing import (
    DataPicker,
    RandomPicker,
    Sample,
    mutate,
    run_case,
    samples,
    shared_samples,
)

SAMPLES = {s.name: s for s in samples()}
#: Cases per sample: the three tabular formats share one connector's few hundred.
EXAMPLES = {"tabular-csv": 100, "tabular-jsonl": 100, "tabular-json": 100}
FUZZ = settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture
def fetch_ctx(settings: Settings) -> Iterator[FetchContext]:
    ctx = FetchContext(settings=settings)
    yield ctx
    ctx.close()


@pytest.mark.parametrize("name", list(SAMPLES))
def test_no_exception_escapes_a_mutated_sample(
    name: str, db: Database, fetch_ctx: FetchContext, tmp_path: Path
) -> None:
    sample = SAMPLES[name]
    path = tmp_path / f"case{sample.suffix}"
    seen: set[str] = set()

    @settings(FUZZ, max_examples=EXAMPLES.get(name, 200))
    @given(st.data())
    def case(data: st.DataObject) -> None:
        path.write_bytes(mutate(sample, DataPicker(data)))
        seen.add(run_case(db, fetch_ctx, sample, path).kind)

    case()
    # The mutations reach the bad outcomes too, so the fuzzing is not stuck on one path.
    assert {"quarantined", "refused"} <= seen, seen


def test_the_unmutated_samples_store_cleanly(
    db: Database, fetch_ctx: FetchContext, tmp_path: Path
) -> None:
    for sample in SAMPLES.values():
        path = tmp_path / f"{sample.name}{sample.suffix}"
        path.write_bytes(sample.data)
        outcome = run_case(db, fetch_ctx, sample, path)
        # Some samples hold bad records on purpose; none is refused and each stores posts.
        assert outcome.kind != "refused" and outcome.stored > 0, (sample.name, outcome)


@pytest.mark.shared_data
def test_mutated_third_party_samples(
    shared_data: Path, db: Database, fetch_ctx: FetchContext, tmp_path: Path
) -> None:
    """A few seeded mutations of each real third-party sample present."""
    found: list[Sample] = shared_samples(shared_data)
    if not found:
        pytest.skip(f"no format samples under {shared_data / 'formats'}")
    for sample in found:
        path = tmp_path / f"case{sample.suffix}"
        for seed in range(8):
            path.write_bytes(mutate(sample, RandomPicker(seed)))
            run_case(db, fetch_ctx, sample, path)
