# Two commands do all set-up on a fresh machine:
#   make demo   parametrize a molecule from SMILES and write OpenMM XML
#   make test   run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SMILES ?= CC(=O)Nc1ccc(O)cc1

.PHONY: demo test lint setup clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch is pinned here: 2.13.0 resolves to the local CPU wheel, an unpinned torch pulls CUDA
	$(BIN)/pip install --quiet torch==2.13.0
	# torch stays pinned while the package installs (torchani 2.9.0 supports torch <= 2.13)
	$(BIN)/pip install --quiet -e ".[qm,dev,bench]" torch==2.13.0 torchani==2.9.0
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	mkdir -p out
	$(BIN)/espaloma-like parametrize "$(SMILES)" -o out/demo_system.xml --format system
	$(BIN)/espaloma-like parametrize "$(SMILES)" -o out/demo_forcefield.xml --format forcefield
	@echo "wrote out/demo_system.xml and out/demo_forcefield.xml (each with a .pdb of positions and topology)"

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check espaloma_like tests training benchmarks notebooks
	$(BIN)/mypy espaloma_like

clean:
	rm -rf $(VENV) out
