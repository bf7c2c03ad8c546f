# Set-up and day-to-day commands. Every target creates the virtualenv it needs,
# so each works on a fresh machine with only python3 (>= 3.10) installed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-deep test-kube lint gateway cluster bench bench-eg mutants clean

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

## The contract suite, the scenarios, the kubectl tips, the least-privilege tests, the differential test
## (simulated API server against the real one) and kubectl's streams (logs, exec, port-forward through the
## node agent's kubelet API) on a real control plane
## (kube-apiserver, controller-manager, scheduler, etcd built from Kubernetes' Go modules in e2e/controlplane/,
## cached in ~/.cache/kernelgate; the node agent as kubelet); ends with how many ran there, per suite.
## Needs Go; a cold build takes long (README, "Real control plane").
KUBE_TESTS := tests/contract scenarios tests/test_kubectl_tips.py tests/test_least_privilege.py \
	tests/test_least_privilege_events.py tests/differential tests/test_kubelet_api.py
test-kube: $(STAMP)
	$(BIN)/python -m e2e.kube build
	KERNELGATE_REQUIRE_KUBE=1 $(BIN)/python -m pytest -q $(KUBE_TESTS) --cluster=kube -p e2e.kube.report

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

## Benchmarks, printed as figures and ratios against floors measured in the same run: the simulated
## API server, execute round trips, and kernel starts, memory, idle kernels and the simulated scale
## (about 10 minutes on two cores; BENCH_ARGS=--quick: about 4; results kept in bench/results/).
bench: $(STAMP)
	$(BIN)/python bench/apiserver.py
	$(BIN)/python bench/gateway_roundtrip.py
	$(BIN)/python bench/kernel_starts.py $(BENCH_ARGS)

## kernelgate and Enterprise Gateway 3.3 (installed once into its own venv in ~/.cache/kernelgate)
## in the same run, each against its own floor, and their ratios (bench/eg_starts.py; about 10
## minutes on two cores, BENCH_ARGS=--quick: 3-6).
bench-eg: $(STAMP)
	$(BIN)/python bench/eg_starts.py $(BENCH_ARGS)

## Mutation testing of the kernel service, the provisioner, the websocket bridge and the informer
## (bench/mutants.py: a seeded sample, about an hour on two cores); fails when the score falls
## below the one recorded in bench/mutants.json.
mutants: $(STAMP)
	nice -n 15 $(BIN)/python bench/mutants.py --check

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
