# The few commands users need. The first use creates .venv and installs atomgym into it.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.installed
# CPU build of PyTorch: a plain "torch" requirement would pull a multi-GB CUDA build.
TORCH   := torch==2.13.0

.PHONY: test train bench venv clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

train: $(STAMP)
	$(PY) -m agents.train

bench: $(STAMP)
	$(PY) -m atomgym.bench

clean-venv:
	rm -rf .venv
