"""Energy (kWh) and emissions (kg CO2e) of a run, a report or a scoring job, through CodeCarbon.

CodeCarbon's *offline* tracker does the work: the carbon intensity is the configured country's
average from the data CodeCarbon ships (no network, no API token, nothing written by it), and
each part's power comes from the best source the machine offers. The record says which source
that was, part by part, and sums it up in ``method``: ``measured`` only when every compute part
(the CPU, and the GPUs where there are any) was read from a power meter (RAPL, NVML, ...);
``estimated`` when CodeCarbon fell back on its model (CPU load x a TDP, 4 W a thread for a CPU
model it does not know). RAM is always CodeCarbon's estimate, and says so in ``sources``: so a
``measured`` record's ``kwh`` still holds an estimated part, which ``estimated_parts`` names
(``["ram"]``; every part not read from a meter, so ``["cpu", "ram"]`` for a load model).

The tracker measures the whole machine (CodeCarbon's ``machine`` mode: on a shared machine the
neighbours' load counts too; under DDP or DeepSpeed, rank zero's machine, all its ranks), so it
runs in a small process of its own beside the job: codecarbon is never imported into the job,
its threads never hold the job's GIL (a tracker thread in a busy training process took seconds
to start), and its start-up (~0.6 s of CPU, mostly importing pandas) runs at the lowest priority (nice 19) on
whatever core is spare. It measures from the moment it has found the hardware (2-3 s after the
start at a load average of 8): ``duration_s`` is the span the figures cover. A job that
ends before then waits for it.

Example::

    with EnergyMeter("FRA") as meter:
        work()
    meter.figures  # {"kwh": ..., "kg_co2e": ..., "method": "estimated", "sources": {...}, ...}
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger(__name__)

#: Power sources that read a meter; anything else CodeCarbon reports is a model's estimate.
MEASURED_SOURCES = frozenset({"RAPL", "Intel Power Gadget", "Windows EMI", "powermetrics", "Raspberry Pi PMIC",
                              "NVML", "AMD SMI"})
#: How long ``stop`` waits for the tracker's process to hand over its figures. It answers in under a
#: second once started (0.2-0.7 s here), 2-3 s when stopped while still starting at a load average
#: of 8; past this the process is killed, a warning logged, and the job records no energy (``None``).
STOP_TIMEOUT_S = 15.0

_CPU_MODES = {"intel_rapl": "RAPL", "intel_power_gadget": "Intel Power Gadget", "windows_emi": "Windows EMI",
              "cpu_load": "load x TDP estimate", "constant": "TDP constant estimate"}
_GPU_DEVICES = {"NvidiaGPUDevice": "NVML", "AMDGPUDevice": "AMD SMI"}


def _config_error(message: str) -> Exception:
    from factory.errors import ConfigError  # here: the tracker's process imports no factory package

    return ConfigError(message)


@functools.lru_cache(maxsize=1)
def _energy_mix() -> dict[str, dict]:
    """CodeCarbon's offline table of countries (ISO 3166 alpha-3 -> energy mix), read without importing it."""
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        raise _config_error("energy.track: codecarbon is not installed (pip install codecarbon, or energy.track=false)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "private_infra" / "global_energy_mix.json"
    return json.loads(path.read_text())


def check_country(country: str, key: str = "energy.country") -> str:
    """``country`` if CodeCarbon has offline data for it, else a one-line ``ConfigError``.

    Raises:
        ConfigError: not an ISO 3166 alpha-3 code in CodeCarbon's table (``US`` for ``USA``).
    """
    mix = _energy_mix()
    if country in mix:
        return country
    import difflib

    close = difflib.get_close_matches(str(country).upper(), list(mix), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else " (e.g. USA, FRA, DEU, GBR, IND, CHN)"
    raise _config_error(f"{key}: {country!r} is not an ISO 3166 alpha-3 country code CodeCarbon has "
                        f"offline data for{hint}")


def meter_for(conf: Mapping[str, Any] | None, key: str = "energy") -> "EnergyMeter | None":
    """A started ``EnergyMeter`` as ``conf`` (an ``energy:`` node) asks, or ``None`` (absent, or ``track: false``).

    Raises:
        ConfigError: ``energy.country`` is not a code CodeCarbon knows (checked before anything starts).
    """
    if conf is None or not conf.get("track", False):
        return None
    meter = EnergyMeter(conf.get("country", "USA"), measure_power_secs=float(conf.get("measure_power_secs", 15)),
                        key=f"{key}.country")
    return meter.start()


class EnergyMeter:
    """Measures one block's energy and emissions; ``figures`` is the strict-JSON record once stopped.

    ``start`` returns at once (the tracker's process finds the hardware meanwhile); ``stop``
    returns the figures, or ``None`` when the tracker could not measure (logged: a
    measurement never fails the job it measures).
    """

    def __init__(self, country: str = "USA", *, measure_power_secs: float = 15.0, key: str = "energy.country"):
        self.country = check_country(country, key)
        self.measure_power_secs = measure_power_secs
        self.figures: dict[str, Any] | None = None
        self._process: subprocess.Popen | None = None
        self._stopped = False

    def start(self) -> "EnergyMeter":
        code = ("import importlib.util as u, sys; s = u.spec_from_file_location('factory_energy', sys.argv[1]); "
                "m = u.module_from_spec(s); s.loader.exec_module(m); m._serve(sys.argv[2], float(sys.argv[3]))")
        self._process = subprocess.Popen(
            [sys.executable, "-c", code, __file__, self.country, str(self.measure_power_secs)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONWARNINGS": "ignore"}, start_new_session=True)  # no terminal's Ctrl-C
        return self

    def __enter__(self) -> "EnergyMeter":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> dict[str, Any] | None:
        """Stop measuring (once; later calls return the same figures)."""
        if self._stopped or self._process is None:
            return self.figures
        self._stopped = True
        try:
            out, _ = self._process.communicate(b"stop\n", timeout=STOP_TIMEOUT_S)
            answer = json.loads(out.decode() or "{}")
        except (subprocess.TimeoutExpired, ValueError, OSError) as e:
            self._process.kill()
            self._process.wait()
            answer = {"error": f"{type(e).__name__}: {e}"}
        if "kwh" not in answer:
            log.warning("energy: CodeCarbon measured nothing (%s); no energy recorded",
                        answer.get("error", f"exit code {self._process.returncode}"))
            return None
        self.figures = answer
        return self.figures

    def cancel(self) -> None:
        """Stop the tracker without figures (a job that ended before it could record them)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._stopped = True


class _Stop(Exception):
    pass


def _serve(country: str, measure_power_secs: float) -> None:
    """The tracker's process: measure until told to stop (a line or EOF on stdin, SIGTERM), print the figures."""
    def stop(*_: Any) -> None:
        raise _Stop

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the job decides when measuring ends
    with contextlib.suppress(OSError):  # the job's cores first: imports and probes wait for spare cycles
        os.nice(19)
    tracker = None
    try:
        try:
            tracker = _offline_tracker(country, measure_power_secs)
            tracker.start()
            sys.stdin.readline()
        except _Stop:
            pass
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        tracker.stop()  # CodeCarbon logs and swallows its own errors: then there is no final data
        data = getattr(tracker, "final_emissions_data", None)
        answer = figures(data, tracker._hardware, country, tracker._force_carbon_intensity_g_co2e_kwh) \
            if data is not None else {"error": "no final data from CodeCarbon"}
    except BaseException as e:  # noqa: BLE001  (told to the job, which logs it)
        answer = {"error": f"{type(e).__name__}: {e}"}
    try:
        print(json.dumps(answer, allow_nan=False), flush=True)
    except (BrokenPipeError, ValueError):  # the job is gone; nobody to tell
        pass


def _offline_tracker(country: str, measure_power_secs: float):
    """CodeCarbon's offline tracker, quiet, writing nothing and reaching nothing.

    Every setting CodeCarbon would otherwise read from ``~/.codecarbon.config``, ``./.codecarbon.config``
    or ``CODECARBON_*`` variables, and that could write a file, open a lock or call an API, is
    given here. The carbon intensity is computed from the offline table and forced, so an API
    token found in those places is never used.
    """
    _fast_cpu_model()
    import codecarbon
    from codecarbon.core.emissions import Emissions
    from codecarbon.core.units import Energy
    from codecarbon.external.geography import GeoMetadata
    from codecarbon.input import DataSource

    logging.getLogger("codecarbon").setLevel(logging.CRITICAL)  # its warnings (unknown CPU model) are about itself
    # kg CO2e of one kWh in the country: CodeCarbon's own country figure, from its offline data only
    kg_per_kwh = Emissions(DataSource(), electricitymaps_api_token=None).get_country_emissions(
        Energy.from_energy(kWh=1), GeoMetadata(country_iso_code=country))
    return codecarbon.OfflineEmissionsTracker(
        country_iso_code=country, measure_power_secs=measure_power_secs, output_methods=[],
        emissions_endpoint=None, electricitymaps_api_token=None, api_call_interval=-1,
        output_dir=str(Path.cwd()), allow_multiple_runs=True, tracking_mode="machine", log_level="critical",
        force_carbon_intensity_g_co2e_kwh=kg_per_kwh * 1000, pue=1.0, project_name="factory")


def _fast_cpu_model() -> None:
    """Answer CodeCarbon's CPU-model question from ``/proc/cpuinfo`` (in the tracker's process only).

    CodeCarbon asks py-cpuinfo, which runs a Python subprocess to probe the CPU: 1.2 s and
    ~1 s of CPU per job here, for the string ``/proc/cpuinfo`` holds (the kernel reads the same
    brand string). Where that file has no model name, py-cpuinfo answers as before.
    """
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    if not name:
        return
    import cpuinfo

    cpuinfo.get_cpu_info = lambda: {"brand_raw": name}


def figures(data: Any, hardware: list, country: str, g_per_kwh: float | None) -> dict[str, Any]:
    """The record of one measurement: CodeCarbon's final ``EmissionsData`` and the hardware it read."""
    from codecarbon import __version__

    sources = sources_of(hardware)
    return {
        "kwh": float(data.energy_consumed),
        "kg_co2e": float(data.emissions),
        "duration_s": round(float(data.duration), 3),
        "country": country,
        "g_co2e_per_kwh": None if g_per_kwh is None else round(float(g_per_kwh), 3),
        "method": method_of(sources),
        "estimated_parts": estimated_parts(sources),
        "sources": sources,
        "kwh_by_part": {"cpu": float(data.cpu_energy), "gpu": float(data.gpu_energy), "ram": float(data.ram_energy)},
        "tracker": f"codecarbon {__version__}",
    }


def sources_of(hardware: list) -> dict[str, str | None]:
    """Where each part's power came from, for CodeCarbon's hardware objects (``tracker._hardware``).

    ``{"cpu": "RAPL" | "load x TDP estimate" | ..., "gpu": "NVML" | None, "ram": ...}``.
    Classes are told apart by name, as CodeCarbon's own hardware cache does.
    """
    found: dict[str, str | None] = {"cpu": None, "gpu": None, "ram": None}
    for part in hardware:
        kind = type(part).__name__
        if kind == "CPU":
            mode = getattr(part, "_mode", None)
            found["cpu"] = _CPU_MODES.get(mode, f"{mode} estimate")
        elif kind == "GPU":
            names = {_GPU_DEVICES.get(type(d).__name__, f"{type(d).__name__} estimate")
                     for d in getattr(part.devices, "devices", [])}
            found["gpu"] = ", ".join(sorted(names)) or None
        elif kind == "RAM":
            found["ram"] = "forced constant estimate" if getattr(part, "_force_ram_power", None) else \
                "CodeCarbon RAM model estimate"
        elif kind == "AppleSiliconChip":
            found["gpu" if getattr(part, "chip_part", "") == "GPU" else "cpu"] = "powermetrics"
        elif kind == "Raspberry":
            found["ram" if getattr(part, "chip_part", "") == "RAM" else "cpu"] = "Raspberry Pi PMIC"
    return found


def method_of(sources: Mapping[str, str | None]) -> str:
    """``measured`` when every compute part present (CPU, GPU) was read from a meter, else ``estimated``."""
    compute = [sources.get("cpu"), sources.get("gpu")]
    present = [s for s in compute if s is not None]
    if present and all(part in MEASURED_SOURCES for s in present for part in s.split(", ")):
        return "measured"
    return "estimated"


def estimated_parts(sources: Mapping[str, str | None]) -> list[str]:
    """The parts present (``cpu``, ``gpu``, ``ram``) whose power no meter read: in ``kwh`` as estimates.

    ``method`` judges the compute parts only; RAM is nearly always CodeCarbon's model, so a
    ``measured`` record says ``estimated_parts: ["ram"]`` (``kwh_by_part`` gives its share).
    """
    return [part for part in ("cpu", "gpu", "ram") if sources.get(part) is not None
            and not all(s in MEASURED_SOURCES for s in str(sources[part]).split(", "))]


def combine(before: Mapping[str, Any] | None, now: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """One record for a run launched more than once (``resume=auto``): the attempts' sums.

    ``measured`` only if every attempt was; the latest attempt's sources and tracker.
    """
    if not before:
        return dict(now) if now else (dict(before) if before else None)
    if not now:
        return dict(before)
    merged = dict(now)
    for name in ("kwh", "kg_co2e", "duration_s"):
        merged[name] = before.get(name, 0.0) + now.get(name, 0.0)
    merged["kwh_by_part"] = {k: before.get("kwh_by_part", {}).get(k, 0.0) + v
                             for k, v in now.get("kwh_by_part", {}).items()}
    if before.get("method") != "measured":
        merged["method"] = "estimated"
    if "estimated_parts" in before or "estimated_parts" in now:
        parts = set(before.get("estimated_parts", ())) | set(now.get("estimated_parts", ()))
        merged["estimated_parts"] = [p for p in ("cpu", "gpu", "ram") if p in parts]
    merged["attempts"] = before.get("attempts", 1) + 1
    return merged
