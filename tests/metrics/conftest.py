from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from jitgrant.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    instance = Metrics()
    yield instance
    instance.stop_server()


def scrape(port: int) -> list[Sample]:
    """Every sample a real HTTP scrape of /metrics returns, parsed the way Prometheus would."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The value of the one sample with this name and exactly these labels."""
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, f"expected one sample {name}{labels}, found {len(found)}"
    return found[0]
