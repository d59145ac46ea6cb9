# The few commands users need. The first use creates .venv and installs atomgym into it.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.installed
# CPU build of PyTorch: a plain "torch" requirement would pull a multi-GB CUDA build.
TORCH   := torch==2.13.0

.PHONY: test train bench baselines report venv clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n 2 --dist loadfile

train: $(STAMP)
	$(PY) -m agents.train

bench: $(STAMP)
	$(PY) -m atomgym.bench

# The README's measured table: every baseline on every shipped scenario, 3 seeds (~90 s on 2 cores).
BASELINES := kernel-default,tuned-hpc,three-percent,best-static,v1-double,v2-grow-decay,v3-boost,v4-soft-boost,v10-acked,proactive,wsf-raise,psi
SCENARIOS := anon-hog-bursts,diurnal-bursts,incast-pagecache,memalloc-drops,quiet,stream-read-bursts,trace-replay,train-randomized,virtio-deferral,real-atomic-stream,real-atomic-stream-wsf100
BL_OUT    := runs/baselines-$(shell date +%Y%m%d-%H%M%S)
baselines: $(STAMP)
	$(PY) -m agents.evaluate --policies $(BASELINES) --scenarios $(SCENARIOS) --seeds 3 --out $(BL_OUT)
	$(PY) -m agents.report $(BL_OUT)/episodes.csv

# The whole result (README "Results"): 10 training seeds of configs/train/benchmark.yaml (on the
# training split) through Ray, then every baseline, both oracles and the 10 models (deterministic and
# stochastic play) on the held-out test split x 10 evaluation seeds -> runs/report-<time>/report.md + PNGs.
# REPORT_ARGS passes options to agents.fullreport (e.g. REPORT_ARGS="--seeds 0-2 --eval-seeds 3").
REPORT_ARGS ?=
report: $(STAMP)
	$(PY) -m agents.fullreport $(REPORT_ARGS)

clean-venv:
	rm -rf .venv
