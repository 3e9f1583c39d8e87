"""factory.training.energy: CodeCarbon's offline tracker in a helper process, its record and its labels."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from factory.errors import ConfigError
from factory.training import energy
from tests.conftest import REPO

FIELDS = {"kwh", "kg_co2e", "duration_s", "country", "g_co2e_per_kwh", "method", "estimated_parts", "sources",
          "kwh_by_part", "tracker"}
RAPL_READABLE = os.access("/sys/class/powercap/intel-rapl", os.R_OK)


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> tuple[dict, list[str]]:
    """One real measurement of a busy half second, from an empty working directory: figures and what it left."""
    cwd = tmp_path_factory.mktemp("energy-cwd")
    before = Path.cwd()
    os.chdir(cwd)
    try:
        with energy.EnergyMeter("FRA", measure_power_secs=1) as meter:
            import time

            end = time.perf_counter() + 0.5
            while time.perf_counter() < end:
                pass
            meter.stop()  # inside: stop is idempotent, __exit__ stops again
    finally:
        os.chdir(before)
    return meter.figures, sorted(p.name for p in cwd.iterdir())


def test_figures_are_strict_json_with_every_field(measured):
    figures, _ = measured
    assert figures is not None
    assert set(figures) == FIELDS
    assert json.loads(json.dumps(figures, allow_nan=False)) == figures
    assert figures["kwh"] > 0 and figures["kg_co2e"] > 0 and figures["duration_s"] >= 0
    assert figures["country"] == "FRA" and figures["tracker"].startswith("codecarbon ")
    # the country's intensity from CodeCarbon's offline table, applied to the energy
    assert figures["kg_co2e"] == pytest.approx(figures["kwh"] * figures["g_co2e_per_kwh"] / 1000, rel=1e-3)
    assert sum(figures["kwh_by_part"].values()) == pytest.approx(figures["kwh"], rel=1e-6)


def test_method_label_follows_the_sources_this_machine_gave(measured):
    figures, _ = measured
    assert figures["method"] == energy.method_of(figures["sources"])
    assert figures["sources"]["ram"] == "CodeCarbon RAM model estimate"
    if not RAPL_READABLE and figures["sources"]["gpu"] is None:  # this machine: no RAPL, no GPU
        assert figures["method"] == "estimated"
        assert figures["sources"]["cpu"] in ("load x TDP estimate", "TDP constant estimate")


def test_the_tracker_writes_nothing(measured):
    _, left = measured
    assert left == []  # no emissions.csv, no lock file, nothing in the working directory


def test_rapl_read_by_codecarbon_is_measured_and_a_load_model_is_estimated(tmp_path):
    """The label logic on CodeCarbon's real hardware objects: a RAPL counter (a sysfs tree like the
    kernel's) that CodeCarbon reads, against its CPU-load model."""
    from codecarbon.external.hardware import CPU
    from codecarbon.external.ram import RAM

    domain = tmp_path / "intel-rapl" / "intel-rapl:0"
    domain.mkdir(parents=True)
    (domain / "name").write_text("package-0\n")
    (domain / "energy_uj").write_text("1000000\n")
    (domain / "max_energy_range_uj").write_text("262143328850\n")
    rapl = CPU(output_dir=str(tmp_path), mode="intel_rapl", model="Test CPU", tdp=None,
               rapl_dir=str(tmp_path / "intel-rapl"))
    rapl.start()
    (domain / "energy_uj").write_text(f"{1_000_000 + 3_600_000_000}\n")  # + 1 Wh
    _, used = rapl.measure_power_and_energy(last_duration=1.0)
    assert used.kWh == pytest.approx(0.001)  # CodeCarbon read the counter: a measurement

    sources = energy.sources_of([RAM(), rapl])
    assert sources == {"cpu": "RAPL", "gpu": None, "ram": "CodeCarbon RAM model estimate"}
    assert energy.method_of(sources) == "measured"  # RAM is always an estimate, and says so in sources

    load = CPU(output_dir=str(tmp_path), mode="cpu_load", model="Test CPU", tdp=8)
    sources = energy.sources_of([RAM(), load])
    assert sources["cpu"] == "load x TDP estimate"
    assert energy.method_of(sources) == "estimated"


@pytest.mark.parametrize("sources, method", [
    ({"cpu": "RAPL", "gpu": "NVML"}, "measured"),
    ({"cpu": "load x TDP estimate", "gpu": "NVML"}, "estimated"),  # a GPU read, the CPU guessed: not a measurement
    ({"cpu": "RAPL", "gpu": "NVML, AMD SMI"}, "measured"),
    ({"cpu": "TDP constant estimate", "gpu": None}, "estimated"),
    ({"cpu": None, "gpu": None}, "estimated"),
])
def test_measured_only_when_every_compute_part_was_read(sources, method):
    assert energy.method_of({**sources, "ram": "CodeCarbon RAM model estimate"}) == method


def test_a_country_codecarbon_lacks_is_one_line_naming_the_key():
    assert energy.check_country("USA") == "USA"
    with pytest.raises(ConfigError, match=r"^energy\.country: 'US' is not an ISO 3166 alpha-3 .*did you mean.*USA"):
        energy.check_country("US")
    with pytest.raises(ConfigError) as info:
        energy.meter_for({"track": True, "country": "Atlantis"})  # before any process starts
    assert len(str(info.value).splitlines()) == 1


def test_track_false_imports_nothing_of_codecarbon_and_track_true_keeps_it_out_of_the_job():
    code = ("import sys; from factory.training import energy; "
            "heavy = lambda: sorted(m for m in sys.modules if m.split('.')[0] in ('codecarbon', 'pandas', 'cpuinfo')); "
            "assert energy.meter_for({'track': False, 'country': 'USA'}) is None; "
            "assert energy.meter_for(None) is None; "
            "off = heavy(); "
            "figures = energy.meter_for({'track': True, 'country': 'USA'}).stop(); "
            "print(repr((off, heavy(), figures['method'])))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    off, on, method = eval(done.stdout)  # noqa: S307  (our own repr of lists and a string)
    assert off == []  # energy.track=false: codecarbon is never imported
    assert on == [] and method in ("measured", "estimated")  # tracking: codecarbon runs in its own process


def test_stopping_at_once_never_raises_and_leaves_no_process():
    meter = energy.meter_for({"track": True, "country": "DEU", "measure_power_secs": 15})
    figures = meter.stop()  # before the tracker found the hardware: it finishes starting, then stops
    assert figures is None or figures["method"] in ("measured", "estimated")
    assert meter._process.poll() is not None
    assert meter.stop() is figures  # once
    cancelled = energy.meter_for({"track": True, "country": "DEU"})
    cancelled.cancel()
    assert cancelled._process.poll() is not None and cancelled.stop() is None


def test_combine_sums_launches_and_an_estimate_taints_the_sum():
    first = {"kwh": 1.0, "kg_co2e": 0.5, "duration_s": 10.0, "method": "estimated",
             "kwh_by_part": {"cpu": 0.4, "gpu": 0.0, "ram": 0.6}, "sources": {"cpu": "load x TDP estimate"}}
    second = {**first, "kwh": 2.0, "kg_co2e": 1.0, "method": "measured", "sources": {"cpu": "RAPL"},
              "kwh_by_part": {"cpu": 1.5, "gpu": 0.0, "ram": 0.5}}
    both = energy.combine(first, second)
    assert both["kwh"] == 3.0 and both["kg_co2e"] == 1.5 and both["duration_s"] == 20.0
    assert both["kwh_by_part"] == {"cpu": 1.9, "gpu": 0.0, "ram": 1.1}
    assert both["method"] == "estimated" and both["attempts"] == 2
    assert energy.combine(None, second) == second and energy.combine(first, None) == first
    assert energy.combine(None, None) is None
    assert energy.combine(second, second)["method"] == "measured"


@pytest.mark.parametrize("sources, method, parts", [
    ({"cpu": "RAPL", "gpu": None, "ram": "CodeCarbon RAM model estimate"}, "measured", ["ram"]),
    ({"cpu": "RAPL", "gpu": "NVML", "ram": "CodeCarbon RAM model estimate"}, "measured", ["ram"]),
    ({"cpu": "load x TDP estimate", "gpu": "NVML", "ram": "CodeCarbon RAM model estimate"}, "estimated", ["cpu", "ram"]),
    ({"cpu": "Raspberry Pi PMIC", "gpu": None, "ram": "Raspberry Pi PMIC"}, "measured", []),
])
def test_a_measured_record_names_the_parts_it_still_estimates(sources, method, parts):
    assert energy.method_of(sources) == method and energy.estimated_parts(sources) == parts


def test_the_measured_figures_name_their_estimated_parts(measured):
    figures, _ = measured
    assert figures["estimated_parts"] == energy.estimated_parts(figures["sources"])
    assert "ram" in figures["estimated_parts"] or figures["sources"]["ram"] in energy.MEASURED_SOURCES


def test_combine_joins_the_estimated_parts():
    first = {"kwh": 1.0, "method": "measured", "estimated_parts": ["ram"], "kwh_by_part": {}}
    second = {"kwh": 1.0, "method": "estimated", "estimated_parts": ["cpu", "ram"], "kwh_by_part": {}}
    assert energy.combine(first, second)["estimated_parts"] == ["cpu", "ram"]


def test_a_tracker_that_never_answers_is_killed_at_the_timeout_and_records_nothing(monkeypatch, caplog):
    monkeypatch.setattr(energy, "STOP_TIMEOUT_S", 0.5)
    meter = energy.EnergyMeter("FRA")
    meter._process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # a hung helper
    assert meter.stop() is None and meter._process.poll() is not None
    assert "TimeoutExpired" in caplog.text and "no energy recorded" in caplog.text


def test_stop_waits_seconds_not_a_minute():
    assert energy.STOP_TIMEOUT_S <= 15  # the helper answers in under a second once started, 2-3 s while starting
