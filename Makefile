# Every target creates or reuses the local virtualenv .venv (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup train test lint format bench clean chromium

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet "onnx>=1.16" "onnxruntime>=1.19"  # ONNX export: see pyproject.toml
	touch $(STAMP)

## make train [ARGS="experiment=smoke"]: train the default model on the embedded data
train: $(STAMP)
	$(VENV)/bin/audioae-train $(ARGS)

## make test [JOBS=2]: the whole test suite (what CI runs), in JOBS pytest-xdist workers
JOBS ?= 2
test: $(STAMP) chromium
	$(PY) -m pytest -q -n $(JOBS) $(ARGS)

# Headless Chromium for tests/test_report.py: Debian's package, installed when missing and run as
# root; where that fails (no root, no network) the browser tests skip and say why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  >/dev/null 2>&1; } || echo "make: no chromium; the report's browser tests skip"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format: $(STAMP)
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

bench: $(STAMP)
	$(PY) bench/run.py $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache
