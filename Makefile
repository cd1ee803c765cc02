# advlogits: set up, execute the chapters, build the book, run the tests.
#
#   make book                           set up, execute every chapter (profile cpu), build _build/html
#   make book PROFILE=paper DEVICE=cuda the same at the paper's scale, on a GPU
#   make test                           set up, pytest, every chapter at profile smoke, book build, site tests
#   make help                           everything else
#
# Chapters are executed by papermill into _build/executed/$(PROFILE)/ and the site is built from those
# executed copies (Jupyter Book never executes anything: `execute_notebooks: "off"` in _config.yml).
# Trained models and metrics live in the library's store ($ADVLOGITS_HOME, default ~/.cache/advlogits),
# which `make clean` never touches.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
# Chapters run one after the other, in sorted order: later chapters may reuse what earlier ones stored.
.NOTPARALLEL:
MAKEFLAGS += --no-builtin-rules

# ---- settings (override on the command line or from the environment) ---------------------------
PROFILE ?= cpu
DEVICE ?= auto
PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
# An extra pytest marker expression for the unit tests, e.g. PYTEST_MARK='not slow'; it is combined with
# `not site` (a `-m` inside PYTEST_ARGS would replace that instead).
PYTEST_MARK ?=
PAPERMILL_FLAGS ?= --no-progress-bar --log-output
FASHION_MNIST_DIR ?= /usr/share/datasets/fashion-mnist

# Pinned first so that pip never resolves another torch; torchattacks is a test-only reference
# installed without its dependencies (they would downgrade requests/idna and break Sphinx).
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
NO_DEPS_PINS := torchattacks==3.5.1
FASHION_MNIST_PACKAGE := dataset-fashion-mnist
PROFILES := smoke cpu paper

BIN := $(VENV)/bin
VPY := $(BIN)/python
STAMP := $(VENV)/.advlogits-setup.stamp

# The store and data locations are read by the library from the environment; pass them on if set.
ifneq ($(origin ADVLOGITS_HOME),undefined)
export ADVLOGITS_HOME
endif
ifneq ($(origin ADVLOGITS_DATA),undefined)
export ADVLOGITS_DATA
endif
# The venv's tools first; the venv's `python3` kernelspec wins over a user-level one.
export PATH := $(abspath $(BIN)):$(PATH)
export JUPYTER_PREFER_ENV_PATH := 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1

ifeq ($(filter $(PROFILE),$(PROFILES)),)
$(error PROFILE=$(PROFILE) is not one of: $(PROFILES). Run e.g. `make book PROFILE=cpu`)
endif

CHAPTERS := $(sort $(wildcard chapters/*.ipynb))
LIB_SOURCES := $(sort $(shell find lib/advlogits -name '*.py' 2>/dev/null))
EXEC_DIR := _build/executed/$(PROFILE)
EXECUTED := $(CHAPTERS:chapters/%=$(EXEC_DIR)/%)
PARAMS_FILE := $(EXEC_DIR)/.params
SRC_DIR := _build/src/$(PROFILE)
JB_OUT := _build/jb/$(PROFILE)
SITE_DIR := $(JB_OUT)/_build/html

.PHONY: help setup data execute stage site book test clean FORCE

help:
	@echo "advlogits: an executable book replicating arXiv 2108.12001"
	@echo
	@echo "  make book      set up $(VENV), get the data, execute every chapter, build _build/html"
	@echo "  make test      set up, pytest, execute every chapter at PROFILE=smoke, build the book (-W), site tests"
	@echo "  make setup     create $(VENV) and install the project (redone only when pyproject.toml changes)"
	@echo "  make data      install Debian's $(FASHION_MNIST_PACKAGE) if it is missing and we are root"
	@echo "  make execute   execute the chapters into _build/executed/PROFILE/ (skips up-to-date ones)"
	@echo "  make site      execute, stage _build/src/PROFILE/ and build it into $(JB_OUT)/_build/html"
	@echo "  make clean     remove _build (never the store)"
	@echo
	@echo "settings: PROFILE=$(PROFILE) (one of: $(PROFILES))  DEVICE=$(DEVICE) (auto, cpu, cuda, ...)"
	@echo "          VENV=$(VENV)  PYTHON=$(PYTHON)  PYTEST_MARK=$(PYTEST_MARK)  PYTEST_ARGS=$(PYTEST_ARGS)"
	@echo "          ADVLOGITS_HOME=$${ADVLOGITS_HOME:-(library default, ~/.cache/advlogits)}"
	@echo "          ADVLOGITS_DATA=$${ADVLOGITS_DATA:-(library default)}"

# ---- set-up: a venv, redone only when pyproject.toml changes -----------------------------------
$(STAMP): pyproject.toml
	@echo "==> setting up $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install $(TORCH_PINS)
	$(VPY) -m pip install -e '.[book,test]'
	$(VPY) -m pip install --no-deps $(NO_DEPS_PINS)
	$(VPY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (advlogits)"
	touch $@

setup: $(STAMP)
	@$(VPY) -c 'import pathlib, sys; from jupyter_client.kernelspec import KernelSpecManager; \
	d = pathlib.Path(KernelSpecManager().find_kernel_specs()["python3"]).absolute(); \
	sys.exit(0 if d.is_relative_to(pathlib.Path(sys.prefix).absolute()) else \
	f"the python3 kernelspec at {d} is not the one of $(VENV); remove it or run `make setup` again")'

# ---- data: Fashion-MNIST from Debian if we can, else torchvision downloads it on first use -------
data:
ifeq ($(PROFILE),paper)
	@echo "note: PROFILE=paper uses CIFAR-10, which torchvision downloads on first use (see \$$ADVLOGITS_DATA)."
else
	@if [ -f "$(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz" ]; then \
	  :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "==> installing Debian's $(FASHION_MNIST_PACKAGE)"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(FASHION_MNIST_PACKAGE); \
	else \
	  echo "note: $(FASHION_MNIST_DIR) is missing and apt-get is not usable here (not root or not Debian);"; \
	  echo "      the data loader downloads Fashion-MNIST through torchvision on first use (see \$$ADVLOGITS_DATA)."; \
	fi
endif

# ---- execution: one papermill run per chapter, redone when the chapter, the library or DEVICE changes
# The parameters file changes only when DEVICE does, so a new DEVICE re-executes the chapters.
$(PARAMS_FILE): FORCE
	@mkdir -p $(@D)
	@printf 'device=%s\n' '$(DEVICE)' > $@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

# papermill writes into .partial/ first (kept there when a chapter fails, for inspection) and the
# result is moved into place only when every cell ran.
$(EXEC_DIR)/%.ipynb: chapters/%.ipynb $(LIB_SOURCES) $(STAMP) $(PARAMS_FILE) | setup data
	@echo "==> executing $< (profile=$(PROFILE), device=$(DEVICE))"
	@mkdir -p $(EXEC_DIR)/.partial
	ADVLOGITS_EXECUTED_DIR="$(abspath $(EXEC_DIR))" \
	$(VPY) -m papermill $< $(EXEC_DIR)/.partial/$*.ipynb -k python3 --cwd chapters $(PAPERMILL_FLAGS) \
	  -p profile $(PROFILE) -p device $(DEVICE) \
	  || { echo "error: $< failed at PROFILE=$(PROFILE); the partly executed notebook is $(EXEC_DIR)/.partial/$*.ipynb" >&2; exit 1; }
	mv $(EXEC_DIR)/.partial/$*.ipynb $@

execute: $(EXECUTED)
	@if [ -z "$(CHAPTERS)" ]; then echo "error: no chapters/*.ipynb to execute" >&2; exit 1; fi

# ---- the site: a source tree whose chapters are the executed copies, built with warnings as errors
stage: execute
	rm -rf $(SRC_DIR)
	mkdir -p $(SRC_DIR)
	cp _config.yml _toc.yml $(SRC_DIR)/
	cp -R book chapters $(SRC_DIR)/
	cp $(EXECUTED) $(SRC_DIR)/chapters/

site: stage
	$(BIN)/jupyter-book build $(SRC_DIR) --path-output $(JB_OUT) --all -W --keep-going
	@echo "==> built $(SITE_DIR)/index.html from _build/executed/$(PROFILE)/"

book: site
	rm -rf _build/html
	cp -R $(SITE_DIR) _build/html
	@echo "==> the book (PROFILE=$(PROFILE)) is at _build/html/index.html"

# ---- tests: unit tests, then every chapter at the smoke profile, then the site ------------------
test: setup
	@$(MAKE) --no-print-directory data PROFILE=smoke
	$(BIN)/pytest -m "not site$(if $(strip $(PYTEST_MARK)), and ($(PYTEST_MARK)))" $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory site PROFILE=smoke
	@if [ -f tests/test_site.py ]; then \
	  echo "==> site tests against _build/jb/smoke/_build/html"; \
	  ADVLOGITS_SITE_DIR="$(abspath _build/jb/smoke/_build/html)" $(BIN)/pytest -m site tests/test_site.py $(PYTEST_ARGS); \
	else \
	  echo "note: no tests/test_site.py, so no site tests to run"; \
	fi

clean:
	rm -rf _build

FORCE:
