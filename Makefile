# Set-up and day-to-day commands. Every target creates the virtualenv it needs,
# so each works on a fresh machine with only python3 (>= 3.10) installed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-deep lint gateway cluster bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

## Run the whole test suite (unit, property, contract, kubectl, state machines).
test: $(STAMP)
	$(BIN)/pytest -q

## The state machines and model-checked properties searched deeply (hypothesis profile "deep",
## nightly-style: tens of minutes), the example database kept in .hypothesis/ between runs.
DEEP_TESTS := tests/test_store_machines.py tests/test_kernel_machine.py tests/test_rbac_model.py \
	tests/test_selectors.py tests/test_websocket_protocol.py
test-deep: $(STAMP)
	HYPOTHESIS_PROFILE=deep $(BIN)/pytest -q $(DEEP_TESTS) --hypothesis-show-statistics

## Static checks: ruff, mypy and the import-layer contracts.
lint: $(STAMP)
	$(BIN)/ruff check gateway fakes tests bench scenarios e2e
	$(BIN)/mypy
	$(BIN)/lint-imports

## Run the gateway on http://127.0.0.1:8888 with the embedded simulated cluster (Ctrl-C stops it).
gateway: $(STAMP)
	$(BIN)/kernelgate serve $(GATEWAY_ARGS)

## Run the simulated cluster (API server + node agent) in the foreground.
cluster: $(STAMP)
	$(BIN)/kernelgate cluster

## Benchmarks of the simulated API server, printed as figures and ratios.
bench: $(STAMP)
	$(BIN)/python bench/apiserver.py
	$(BIN)/python bench/gateway_roundtrip.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
