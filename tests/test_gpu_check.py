"""benchmarks/gpu_check.py at toy sizes on the CPU, so the GPU check cannot rot between GPU runs."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    """The script as a module (no run: the check trains its own, at its own toy sizes)."""
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" /
                                                  "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.e2e
def test_quick_cpu_run_writes_every_field(gpu_check, tmp_path, monkeypatch):
    monkeypatch.setenv("PGGAN_HOME", str(tmp_path))  # its own home: nothing shared with others
    gpu_check.main(["--device", "cpu", "--quick", "--out", str(tmp_path / "out"),
                    "--train-minutes", "1"])
    result = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert {"device", "torch", "tests", "throughput", "peak_memory_gb", "schedule_hours",
            "meets_goal", "short_training", "bf16_peak_tflops", "goal_rop_hours"} <= set(result)
    rows = result["throughput"]
    assert {(r["precision"], r["resolution"]) for r in rows} == {
        (p, r) for p in ("bf16", "fp32") for r in (4, 8, 16)}
    assert all(r["img_s"] > 0 and r["flops_per_step"] > 0 for r in rows)
    # the quick run stops at 16 px, so the paper's schedules cannot be timed from it
    assert result["schedule_hours"]["bf16"] == {"rop": None, "brats": None}
    training = result["short_training"]
    assert training["losses_finite"] and training["reached_resolution"] == 16
    assert (tmp_path / "out" / "samples.png").stat().st_size > 0
