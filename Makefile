# The few commands users need. The first use creates .venv and installs atomgym into it.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.installed
# CPU build of PyTorch: a plain "torch" requirement would pull a multi-GB CUDA build.
TORCH   := torch==2.13.0

.PHONY: test test-fast warmup wheel train bench baselines report docs venv clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# The whole suite (CI and the README use this): lint, one compile of the simulator into the per-user
# cache (kernel/jit.py) so that the test workers load it instead of each compiling it, the suite but for
# the tests marked slow (QEMU, the wheel, long training), then those.
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m atomgym warmup
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow"
	$(PY) -m pytest -q -n 2 --dist loadfile -m slow

# The inner loop after an edit: kernel rules, scenarios, golden traces, determinism, the env contract.
# The warmup first (under a second when nothing changed): after an edit of the engine one process and
# its compile helper compile it, instead of both test workers each compiling it.
FAST := tests/test_kernel_check.py tests/test_kernel_properties.py tests/test_kernel_snapshot.py \
        tests/test_kernel_sysctl_table.py tests/test_scenario.py tests/test_sim_golden.py \
        tests/test_sim_determinism.py tests/test_sim_step.py tests/test_sim_index.py tests/test_env.py tests/test_jit_cache.py
test-fast: $(STAMP)
	$(PY) -m atomgym warmup
	$(PY) -m pytest -q -n 2 -m "not slow" $(FAST)

warmup: $(STAMP)
	$(PY) -m atomgym warmup

# The wheel users install (dist/atomgym-*.whl), with the simulator compiled for the generic x86-64 CPU
# (atomgym warmup --portable -> atomgym/kernel/precompiled): a fresh install's first step loads that code
# instead of compiling for about a minute. About 2 min on 2 cores, once per version of the sources.
wheel: $(STAMP)
	$(PY) -m atomgym warmup --portable
	rm -rf build/lib/atomgym/kernel/precompiled
	$(PY) -m pip wheel --no-deps --no-build-isolation -q -w dist .

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

# The whole result: 10 training seeds of configs/train/benchmark.yaml (on the training split) through
# Ray, then every baseline, both oracles and the 10 models (deterministic and stochastic play) on the
# held-out test split x 10 evaluation seeds -> runs/report-<time>/report.md + PNGs; then the speed
# benchmark on the same machine, and the publication of both: docs/results.md, docs/results/ and the
# README's results block (agents.publish). REPORT_ARGS passes options to agents.fullreport (e.g.
# REPORT_ARGS="--seeds 0-2 --eval-seeds 3").
REPORT_ARGS ?=
REPORT_OUT  := runs/report-$(shell date +%Y%m%d-%H%M%S)
report: $(STAMP)
	$(PY) -m agents.fullreport --out $(REPORT_OUT) $(REPORT_ARGS)
	$(PY) -m atomgym.bench --json > $(REPORT_OUT)/.bench.json && mv $(REPORT_OUT)/.bench.json $(REPORT_OUT)/bench.json
	$(PY) -m agents.publish $(REPORT_OUT) --bench $(REPORT_OUT)/bench.json

# The docs' generated tables (the commands' options, the training config's and a scenario's keys) from
# atomgym/schema.py and atomgym/scenario_schema.py; tests/test_schema.py checks that the committed docs
# are what this writes.
docs: $(STAMP)
	$(PY) scripts/gen_docs.py

clean-venv:
	rm -rf .venv
