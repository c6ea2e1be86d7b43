"""Audio-visual runs as the code before the modality-keyed redesign trained them (issue 21): each test that
trains a reference run compares its metrics.jsonl, and the state-dict keys its checkpoint had, with
tests/data/av_reference_metrics.json, recorded from that code.

Set MMCOSINE_RECORD_AV_REFERENCE=1 to record instead of compare (only ever from the code before a change
that must not move the numbers). On a CPU other than the recording one (its name and instruction-set flags:
cpu_model), floating-point kernels may sum in another order, so there the numbers are compared to 1e-5 relative
instead of bit for bit. The file was recorded from fb16f9b (the last commit before the redesign) on this
project's machine, AMD EPYC with AVX-512, on 2026-12-06."""
import hashlib
import json
import os
import platform
from pathlib import Path

import pytest
import torch

REFERENCE = Path(__file__).resolve().parent.parent / "data" / "av_reference_metrics.json"
RECORDING = os.environ.get("MMCOSINE_RECORD_AV_REFERENCE") == "1"


def cpu_model() -> str:
    """The CPU's name and a digest of its instruction-set flags: machines that share a name (a cloud's generic
    "AMD EPYC") may still run other kernels (AVX-512 or not), which sum in another order."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or "unknown"
    flags = " ".join(sorted(fields.get("flags", "").split()))
    return f"{name} [{hashlib.sha1(flags.encode()).hexdigest()[:10]}]" if flags else name


def comparable(rows):
    """The logged numbers that a seeded run fixes: everything but wall-clock times."""
    return [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in rows]


def read_run(run_dir: Path):
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    keys = sorted(torch.load(Path(run_dir) / "last.pt", map_location="cpu", weights_only=False)["model"])
    return comparable(rows), keys


def _load() -> dict:
    return json.loads(REFERENCE.read_text()) if REFERENCE.is_file() else {"cpu": cpu_model(), "runs": {}, "keys": {}}


def has_reference(name: str) -> bool:
    """Whether the code before issue 21 had this run (methods added since have no earlier numbers to equal)."""
    return RECORDING or name in _load()["runs"]


def check_run(name: str, run_dir: Path) -> None:
    """Compare (or record) one reference run."""
    rows, keys = read_run(run_dir)
    reference = _load()
    if RECORDING:
        reference["cpu"] = cpu_model()
        key_id = next((k for k, v in reference["keys"].items() if v == keys), None)
        if key_id is None:
            key_id = str(len(reference["keys"]))
            reference["keys"][key_id] = keys
        reference["runs"][name] = {"rows": rows, "keys": key_id}
        REFERENCE.write_text(json.dumps(reference, indent=0, sort_keys=True) + "\n")
        return
    expected = reference["runs"][name]
    assert len(rows) == len(expected["rows"]), f"{name}: {len(rows)} epochs logged, {len(expected['rows'])} before"
    for row, want in zip(rows, expected["rows"]):  # keys added since are allowed; none of the old may go
        assert not set(want) - set(row), f"{name}: logged keys lost: {sorted(set(want) - set(row))}"
    if reference["cpu"] == cpu_model():
        assert [{k: row[k] for k in want} for row, want in zip(rows, expected["rows"])] == expected["rows"], \
            f"{name}: numbers differ from the code before the change"
    else:
        for row, want in zip(rows, expected["rows"]):
            for key, value in want.items():
                assert row[key] == (pytest.approx(value, rel=1e-5, abs=1e-6) if isinstance(value, float) else value), \
                    f"{name}: {key}"


def legacy_key_sets() -> dict:
    """Every state-dict key set a reference checkpoint had before the change (id -> sorted keys)."""
    return _load()["keys"]
