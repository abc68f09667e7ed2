# Two commands (see README): `make lab` opens the course, `make test` runs every test.
# Both create .venv and install the course into it the first time.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Which TensorFlow wheel: CPU-only on Linux without an NVIDIA GPU, with CUDA on Linux with one, plain elsewhere.
ifeq ($(shell uname -s),Linux)
TF_EXTRA ?= $(if $(shell command -v nvidia-smi 2>/dev/null),tensorflow-gpu,tensorflow-cpu)
else
TF_EXTRA ?= tensorflow
endif
EXTRAS ?= torch,$(TF_EXTRA),lab,dev
NOTEBOOK_WORKERS ?= 2

.PHONY: lab test test-unit test-notebooks test-browser install lessons doctor clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.10+ is required; found " + sys.version.split()[0]) if sys.version_info < (3, 10) else None'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[$(EXTRAS)]"
	$(PY) -m transfer_course.labsettings
	touch $(STAMP)

# Jupyter refuses to start as root (containers, some cloud machines) unless told it is intended.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)

lab: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(VENV)/bin/jupyter lab --notebook-dir=lessons $(ALLOW_ROOT) $(LAB_ARGS)

# PyTorch and TensorFlow tests run in separate processes: importing torchvision after tensorflow
# in one process can crash, and each side must work without the other anyway. The two suites run side by side (each
# keeps about one core busy on average); the PyTorch suite's report is printed when both have finished.
test-unit: $(STAMP)
	$(PY) -m pytest tests --ignore=tests/torch --ignore=tests/tensorflow --ignore=tests/browser
	@mkdir -p .test-logs; \
	$(PY) -m pytest tests/torch > .test-logs/torch.log 2>&1 & torch_pid=$$!; \
	$(PY) -m pytest tests/tensorflow; tf_status=$$?; \
	wait $$torch_pid; torch_status=$$?; \
	echo "---- tests/torch ----"; cat .test-logs/torch.log; \
	echo "tests/torch exit $$torch_status, tests/tensorflow exit $$tf_status"; \
	test $$torch_status -eq 0 && test $$tf_status -eq 0

# Every notebook runs as a test in the quick profile. Here, under nbval: all of lessons/ (the student versions, exercises
# blank) and the solutions that no results test runs. The solutions of lessons 02 onwards run in the results tests of
# test-unit (tests/test_lesson*_results.py: every cell executed, then the lesson's numbers checked), not twice.
# One thread per notebook kernel: two kernels side by side on two cores, instead of thread pools fighting over them.
NBVAL_SOLUTIONS := $(filter-out $(shell $(PY) tests/notebooks_with_results_tests.py 2>/dev/null),$(wildcard solutions/*.ipynb))
# Lesson 06's notebooks start processes that talk over local ports (torchrun, TF_CONFIG): they run one after the
# other, after the others, never beside another notebook.
SERIAL_LESSONS := $(wildcard lessons/06_*.ipynb)
test-notebooks: $(STAMP)
	OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \
	TF_CPP_MIN_LOG_LEVEL=2 TRANSFER_COURSE_PROFILE=quick $(PY) -m pytest --nbval-lax --nbval-current-env \
		-n $(NOTEBOOK_WORKERS) --dist loadscope $(addprefix --ignore=,$(SERIAL_LESSONS)) lessons $(NBVAL_SOLUTIONS)
	OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \
	TF_CPP_MIN_LOG_LEVEL=2 TRANSFER_COURSE_PROFILE=quick $(PY) -m pytest --nbval-lax --nbval-current-env \
		-n 0 $(SERIAL_LESSONS)

test: test-unit test-notebooks test-browser

# A lesson in a real browser (JupyterLab + headless Chromium through Playwright): outputs, progress-bar widgets and
# figures render, and still render after saving and reopening. Screenshots in browser-artifacts/. Part of `make test`;
# skipped (and said so) where Chromium is not installed.
test-browser: $(STAMP)
	$(PY) -m pytest tests/browser -v -rs

lessons: $(STAMP)
	$(VENV)/bin/transfer-course build-lessons

doctor: $(STAMP)
	$(VENV)/bin/transfer-course doctor

clean:
	rm -rf $(VENV) .pytest_cache .test-logs
