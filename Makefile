# advlogits: set up, execute the chapters, build the book, run the tests.
#
#   make book                           set up, compute the plan on every core, execute every chapter (profile
#                                       cpu), build _build/html, compare its scorecard with results/cpu/
#   make book PROFILE=paper DEVICE=cuda the same at the paper's scale, on a GPU
#   make test                           set up, lint, the smoke book (its own store) and both site editions, pytest
#   make lint                           ruff (lint and format) and the chapters' hygiene, without the set-up
#   make lab                            set up, then the chapters in JupyterLab on 127.0.0.1:LAB_PORT (8888)
#   make bench                          time PGD, training epochs and the book build (JSON in _build/bench/)
#   make gpu-check                      on a GPU (< 5 min): throughput, bf16 vs fp32, the paper profile's GPU-hours
#   make system-packages                as root: the Debian packages the tests use (a browser, Fashion-MNIST, npm)
#   make help                           everything else
#
# Read top-down: the settings (each overridable), the project's fixed values, the names derived from them, then
# the targets in the order a build meets them. Chapters are executed by papermill into _build/executed/$(PROFILE)/
# and the site is built from those executed copies (Jupyter Book never executes anything: `execute_notebooks:
# "off"` in _config.yml). Trained models and metrics live in the library's store ($ADVLOGITS_HOME, default
# ~/.cache/advlogits), which `make clean` never touches. Nothing here installs a system package unless asked to
# (`make system-packages`, `make browser`); the programs the recipes run are in scripts/.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
# Chapters run one after the other, in sorted order: later chapters may reuse what earlier ones stored. Only
# `make execute`'s own sub-make (CHAPTER_JOBS_NOW set) runs them side by side, when the store holds everything.
ifeq ($(CHAPTER_JOBS_NOW),)
.NOTPARALLEL:
endif
MAKEFLAGS += --no-builtin-rules

# ---- settings: each may be set on the command line (make book PROFILE=smoke) or in the environment -------------
# The cores this process may run on (nproc, ignoring the OMP_* variables): the default of the worker counts below
CORES := $(shell env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 2)

# -- what to build
# The experiments' scale, one of $(PROFILES): smoke (seconds, numbers that mean nothing), cpu (the laptop build),
# decisive (the design that decides C6-C8, hours of compute), paper (CIFAR-10, GPU)
PROFILE ?= cpu
# Where the chapters compute: auto (a GPU if there is one, else the CPU), cpu, cuda, cuda:1, ...
DEVICE ?= auto
# 1: the student edition, the same pages without the exercises' solutions, in folders of its own
STUDENT ?=
# The repository's public address (https://github.com/OWNER/REPO): with it, the site has launch and repository buttons
REPO_URL ?=
# The branch that those buttons open
REPO_BRANCH ?= main

# -- the environment
# The Python that creates the venvs; with USE_ACTIVE_ENV=1, the active environment's Python that runs everything
PYTHON ?= python3
# The venv that the set-up creates and everything runs in (empty: the same as USE_ACTIVE_ENV=1)
VENV ?= .venv
# 1: no venv; the set-up only checks that the active environment has the project and the extras, installs nothing
USE_ACTIVE_ENV ?=
# What installs the venv's packages: uv (handed the settings pip would use; a third of pip's time) or pip
INSTALLER ?= uv
# Flags that `make lock` passes to `uv pip compile`, e.g. --upgrade or '--upgrade-package numpy'
LOCK_FLAGS ?=
# Where `make lint` installs the lock's ruff alone when $(VENV) does not have it (so lint needs no set-up)
RUFF_VENV ?= _build/ruff

# -- computing and executing
# One-thread workers that compute the book's plan before the chapters: one per core; 1: one process
PLAN_WORKERS ?= $(CORES)
# How those workers run: local (processes on this machine) or ray (tasks on a Ray cluster)
PLAN_EXECUTOR ?= local
# Chapters run at once when the store holds the whole plan (otherwise one after the other); 1: always one at a time
CHAPTER_JOBS ?= $(CORES)
# papermill's flags for every chapter it executes
PAPERMILL_FLAGS ?= --no-progress-bar --log-output
# Where Debian's $(FASHION_MNIST_PACKAGE) puts Fashion-MNIST (elsewhere the data loader downloads it)
FASHION_MNIST_DIR ?= /usr/share/datasets/fashion-mnist
# glibc keeps freed blocks up to 32 MiB (a batch's activations) in the heap: attacks 7-26% faster, same results
export MALLOC_MMAP_THRESHOLD_ ?= 33554432
# glibc keeps up to 1 GiB of free heap instead of handing it back to the system after every batch
export MALLOC_TRIM_THRESHOLD_ ?= 1073741824
# glibc grows the heap 256 MiB at a time (all three: benchmarks/README.md; other allocators ignore them)
export MALLOC_TOP_PAD_ ?= 268435456

# -- tests and benchmarks
# A pytest marker expression for `make test`'s tests, combined with `not bench`, e.g. PYTEST_MARK='not slow'
PYTEST_MARK ?=
# Other pytest arguments for every pytest run, e.g. -x (a -m here replaces the marker expression above)
PYTEST_ARGS ?=
# pytest-xdist workers for `make test`, one torch thread each (beats threads in one process); 0: in this process
PYTEST_WORKERS ?= $(CORES)
# The port of `make lab`'s JupyterLab on 127.0.0.1 (it stops if the port is taken)
LAB_PORT ?= 8888
# The benchmarks `make bench` runs, any of: $(BENCHMARKS) (gpu is also `make gpu-check`)
BENCH ?= attack_throughput train_epoch allocator book make_test
# The book benchmark's flags: a cold build and a warm one, each as `make book` builds (the plan on every core first)
BENCH_BOOK_FLAGS ?= --plan-executor local
# Where the benchmarks write their JSON results
BENCH_DIR ?= _build/bench

# -- the site and publishing
# The npm that packs the site's offline assets (MathJax, the widget scripts) from package-lock.json
NPM ?= npm
# The built site that `make publish` pushes
PUBLISH_SITE ?= _build/html
# Where it pushes it: a remote's name, or a repository's path or URL
PUBLISH_REMOTE ?= origin
# The branch it replaces there, which holds nothing but the site
PUBLISH_BRANCH ?= gh-pages
# The git clone in which ghp-import writes that branch
PUBLISH_FROM ?= .

# -- read by the library from the environment, and passed on when set: the store's folder (ADVLOGITS_HOME, default
# ~/.cache/advlogits) and the folder of downloaded data sets (ADVLOGITS_DATA)
ifneq ($(origin ADVLOGITS_HOME),undefined)
export ADVLOGITS_HOME
endif
ifneq ($(origin ADVLOGITS_DATA),undefined)
export ADVLOGITS_DATA
endif

# ---- the project's fixed values -------------------------------------------------------------------------------
# Every dependency of every extra at one version, written by `make lock`, the constraints (-c) of every install
LOCK := requirements/lock.txt
# Bounds the lock keeps to beyond pyproject.toml's ranges, each with its reason (read by `make lock` only)
LOCK_CONSTRAINTS := requirements/lock_constraints.txt
# The PyTorch that the lock is resolved around, so that pip never resolves another (binder/ pins the same)
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# The uv installed into the venv to install with (INSTALLER=uv) and to write the lock
UV_PIN := uv==0.13.9
# The tests' reference, installed without its dependencies (they would break Sphinx), so outside the lock
NO_DEPS_PINS := torchattacks==3.5.1
# Debian's Fashion-MNIST, the data of the smoke and cpu profiles
FASHION_MNIST_PACKAGE := dataset-fashion-mnist
# Debian packages as FILE:PACKAGE, FILE the file or command that shows PACKAGE is there: the site tests' browser,
BROWSER_PACKAGES := /usr/bin/chromium:chromium /usr/bin/chromedriver:chromium-driver
# and everything `make system-packages` installs (npm packs the site's offline assets)
SYSTEM_PACKAGES := $(BROWSER_PACKAGES) $(NPM):npm \
	$(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz:$(FASHION_MNIST_PACKAGE)
PROFILES := smoke cpu decisive paper
BENCHMARKS := attack_throughput train_epoch allocator book make_test gpu

# ---- settings checked before anything runs --------------------------------------------------------------------
ifeq ($(shell [ "$(PLAN_WORKERS)" -ge 1 ] 2>/dev/null && echo ok),)
$(error PLAN_WORKERS=$(PLAN_WORKERS) is not a number of workers (>= 1); leave it unset for one worker per core, or e.g. PLAN_WORKERS=1 computes the plan in one process)
endif

ifeq ($(shell [ "$(CHAPTER_JOBS)" -ge 1 ] 2>/dev/null && echo ok),)
$(error CHAPTER_JOBS=$(CHAPTER_JOBS) is not a whole number of at least 1; e.g. CHAPTER_JOBS=1 runs the chapters one after the other)
endif

ifeq ($(filter $(INSTALLER),uv pip),)
$(error INSTALLER=$(INSTALLER) is neither uv nor pip; e.g. `make setup INSTALLER=pip` installs with pip alone)
endif

ifeq ($(filter $(PROFILE),$(PROFILES)),)
$(error PROFILE=$(PROFILE) is not one of: $(PROFILES). Run e.g. `make book PROFILE=cpu`)
endif

ifneq ($(filter-out $(BENCHMARKS),$(BENCH)),)
$(error BENCH=$(BENCH) names unknown benchmarks; choose from: $(BENCHMARKS), e.g. `make bench BENCH=attack_throughput`)
endif

# ---- names derived from the settings --------------------------------------------------------------------------
comma := ,
ACTIVE_ENV := $(if $(strip $(VENV)),$(filter 1 yes true,$(USE_ACTIVE_ENV)),1)
ifeq ($(ACTIVE_ENV),)
BIN := $(VENV)/bin
VPY := $(BIN)/python
ENV_DIR := $(VENV)
ENV_NAME := $(VENV)
# The project's extras (pyproject.toml) in every venv; `paper` (RobustBench: PROFILE=paper and the tests) and
# `lab` (JupyterLab: `make lab` and the tests) are added by stamps of their own, only where needed.
EXTRAS := book,test,cluster
else
# The active environment: its interpreter and its scripts folder (bin/ of a venv or a conda environment).
VPY := $(shell $(PYTHON) -c 'import sys; print(sys.executable)' 2>/dev/null)
BIN := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)
ifeq ($(VPY),)
$(error USE_ACTIVE_ENV=1 runs the active environment's $(PYTHON), which is not there: activate the environment or pass PYTHON=/path/to/python)
endif
ENV_DIR := _build/active-env
ENV_NAME := the active environment ($(VPY))
# What the active environment must have: the book's extra, the tests' for `make test` and `make bench`, Ray's
# for PLAN_EXECUTOR=ray; `paper` and `lab` are checked by their own stamps, as in a venv.
EXTRAS := book$(if $(filter test bench,$(MAKECMDGOALS)),$(comma)test)$(if $(filter ray,$(PLAN_EXECUTOR)),$(comma)cluster)
endif
# The set-up byte-compiles what it installs (pip does, uv with --compile-bytecode): do not skip it, since where
# PYTHONDONTWRITEBYTECODE is set (as on our CI machines) every import would then compile torch anew.
PIP_INSTALL := $(VPY) -m pip install --disable-pip-version-check
STAMP := $(ENV_DIR)/.advlogits-setup.stamp
PAPER_STAMP := $(ENV_DIR)/.advlogits-paper.stamp
LAB_STAMP := $(ENV_DIR)/.advlogits-lab.stamp
# $(call install_extras,EXTRAS): install the project with those extras into the venv, versions from the lock,
# with INSTALLER (uv by default, with the settings pip would use: requirements/uv_install.py; or pip); with
# USE_ACTIVE_ENV=1, check that the active environment has them instead (scripts/check_active_env.py).
ifeq ($(ACTIVE_ENV),)
ifeq ($(INSTALLER),uv)
INSTALL := $(VPY) requirements/uv_install.py
else
INSTALL := $(PIP_INSTALL)
endif
install_extras = $(INSTALL) -c $(LOCK) -e '.[$(1)]'
else
install_extras = $(VPY) scripts/check_active_env.py --lock $(LOCK) '$(1)'
endif

# The venv's tools first; the venv's `python3` kernelspec wins over a user-level one.
export PATH := $(abspath $(BIN)):$(PATH)
export JUPYTER_PREFER_ENV_PATH := 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1

CHAPTERS := $(sort $(wildcard chapters/*.ipynb))
LIB_SOURCES := $(sort $(shell find lib/advlogits -name '*.py' 2>/dev/null))
EXEC_DIR := _build/executed/$(PROFILE)
EXECUTED := $(CHAPTERS:chapters/%=$(EXEC_DIR)/%)
SCORECARD := $(EXEC_DIR)/05_scorecard.ipynb
PARAMS_FILE := $(EXEC_DIR)/.params
PLAN_STAMP := $(EXEC_DIR)/.plan
PLAN_RUN := $(EXEC_DIR)/plan-run.txt
EDITION := $(PROFILE)$(if $(filter-out 0,$(STUDENT)),-student)
SRC_DIR := _build/src/$(EDITION)
JB_OUT := _build/jb/$(EDITION)
SITE_DIR := $(JB_OUT)/_build/html
HTML_DIR := _build/html$(if $(filter-out 0,$(STUDENT)),-student)

.PHONY: help setup lock lab system-packages browser data offline execute stage site book repository test lint \
	check-browser bench gpu-check results cite publish clean FORCE

help:
	@echo "advlogits: an executable book replicating arXiv 2108.12001"
	@echo
	@echo "  make book      set up $(VENV), get the data, compute the plan (one worker per core: PLAN_WORKERS), execute"
	@echo "                 every chapter, build _build/html and compare its scorecard with results/PROFILE/ (one line)"
	@echo "                 (STUDENT=1: the student edition, without solutions, in _build/html-student)"
	@echo "  make repository REPO_URL=...  write the repository's address into the chapters' Colab cell"
	@echo "  make test      set up, lint, build the book at PROFILE=smoke (-W -n, both editions, a store of its own:"
	@echo "                 $(TEST_HOME)), then pytest: the unit tests, the site's in a browser, the build's store"
	@echo "                 (the site tests need Debian's chromium: \`make system-packages\` as root first, as .ci/run does)"
	@echo "  make lint      ruff check, ruff format --check and the chapters' hygiene (no outputs), as pre-commit's hooks;"
	@echo "                 needs no set-up: the lock's ruff from $(VENV), or alone in $(RUFF_VENV)"
	@echo "  make lab       set up, install JupyterLab (the lab extra) and serve the chapters with the project's kernel"
	@echo "                 on http://127.0.0.1:LAB_PORT/lab (its claims go to _build/hand-runs/, not the build's)"
	@echo "  make setup     create $(VENV) and install the project, versions from $(LOCK) (redone when pyproject.toml"
	@echo "                 or the lock changes); with USE_ACTIVE_ENV=1, check the active environment instead"
	@echo "  make lock      resolve every dependency of every extra into $(LOCK) with uv (LOCK_FLAGS=--upgrade: anew)"
	@echo "  make system-packages  as root, install the Debian packages the book and its tests use that are missing:"
	@echo "                 chromium and chromium-driver (site tests), $(FASHION_MNIST_PACKAGE), npm; .ci/run runs it"
	@echo "  make browser   as root, install Debian's chromium and chromium-driver for the site tests, if missing"
	@echo "  make data      say where the profile's data set comes from (installs nothing: see make system-packages)"
	@echo "  make offline   pack MathJax and the widget scripts with npm into $(OFFLINE_DIR) (the site reads offline)"
	@echo "  make execute   execute the chapters into _build/executed/PROFILE/ (skips up-to-date ones)"
	@echo "  make site      execute, stage _build/src/PROFILE/ and build it into $(JB_OUT)/_build/html"
	@echo "  make bench     run the benchmarks in benchmarks/ (BENCH=$(BENCH)), JSON results in $(BENCH_DIR)/"
	@echo "  make gpu-check on a CUDA device, in under 5 minutes: training and attack images/s (fp32, bf16, compile),"
	@echo "                 peak memory, bf16 vs fp32 agreement, the paper profile's GPU-hours; $(BENCH_DIR)/gpu.json"
	@echo "                 (without a GPU: a tiny run that only checks the script)"
	@echo "  make results   record the built PROFILE's scorecard and environment in results/PROFILE/ (committed);"
	@echo "                 for cpu, also the README's results table (run after \`make book\`)"
	@echo "  make cite      rewrite the README's \"How to cite\" section from CITATION.cff"
	@echo "  make publish   push the built site ($(PUBLISH_SITE)) to the $(PUBLISH_BRANCH) branch of $(PUBLISH_REMOTE) with ghp-import"
	@echo "  make clean     remove _build (never the store)"
	@echo
	@echo "settings (all of them, each with what it does, at the top of the Makefile):"
	@echo "          PROFILE=$(PROFILE) (one of: $(PROFILES))  DEVICE=$(DEVICE) (auto, cpu, cuda, ...)  STUDENT=$(STUDENT)"
	@echo "          PLAN_WORKERS=$(PLAN_WORKERS) (one-thread workers that compute the plan before the chapters; default:"
	@echo "                   one per core, $(CORES) here; 1: one process)  PLAN_EXECUTOR=$(PLAN_EXECUTOR)"
	@echo "          CHAPTER_JOBS=$(CHAPTER_JOBS) (chapters at once when the store holds the whole plan; 1: one after the other)"
	@echo "          VENV=$(VENV)  PYTHON=$(PYTHON)  USE_ACTIVE_ENV=$(USE_ACTIVE_ENV) (1: the active environment, no venv)"
	@echo "          INSTALLER=$(INSTALLER) (uv or pip: what installs the venv's packages)  RUFF_VENV=$(RUFF_VENV)"
	@echo "          PYTEST_MARK=$(PYTEST_MARK)  PYTEST_ARGS=$(PYTEST_ARGS)  PYTEST_WORKERS=$(PYTEST_WORKERS)"
	@echo "          BENCH_BOOK_FLAGS=$(BENCH_BOOK_FLAGS)  BENCH_DIR=$(BENCH_DIR)"
	@echo "          REPO_URL=$(REPO_URL) (empty: no launch buttons)  REPO_BRANCH=$(REPO_BRANCH)  NPM=$(NPM)"
	@echo "          LAB_PORT=$(LAB_PORT) (make lab)  PUBLISH_REMOTE=$(PUBLISH_REMOTE)  PUBLISH_FROM=$(PUBLISH_FROM)"
	@echo "          ADVLOGITS_HOME=$${ADVLOGITS_HOME:-(library default, ~/.cache/advlogits)}"
	@echo "          ADVLOGITS_DATA=$${ADVLOGITS_DATA:-(library default)}"

# ---- set-up: a venv, redone only when pyproject.toml or the lock changes ------------------------
# With USE_ACTIVE_ENV=1 the stamp is checked on every call instead: it records the interpreter and the versions
# of the project's requirements, and changes (re-executing the chapters) only when they do.
ifeq ($(ACTIVE_ENV),)
$(STAMP): pyproject.toml $(LOCK)
	@echo "==> setting up $(VENV) (extras $(EXTRAS), versions from $(LOCK))"
	$(PYTHON) -m venv $(VENV)
	$(if $(filter uv,$(INSTALLER)),$(PIP_INSTALL) --quiet '$(UV_PIN)')
	$(call install_extras,$(EXTRAS))
	$(INSTALL) --no-deps $(NO_DEPS_PINS)
	$(VPY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (advlogits)"
	touch $@
else
$(STAMP): FORCE
	@mkdir -p $(@D)
	@$(call install_extras,$(EXTRAS)) $@
endif

# RobustBench, the paper extra: chapter 2's pretrained models at PROFILE=paper, and the tests that load them.
$(PAPER_STAMP): $(STAMP)
	@echo "==> the paper extra (RobustBench) in $(ENV_NAME)"
	$(call install_extras,paper)
	touch $@

# The set-up ends by checking that the kernel papermill and JupyterLab start is this environment's.
setup: $(STAMP) $(if $(filter paper,$(PROFILE)),$(PAPER_STAMP))
	@$(VPY) scripts/check_kernelspec.py

# ---- the lock: every dependency of every extra at one version ----------------------------------------
# `make lock` resolves pyproject.toml with all its extras and PyTorch at TORCH_PINS with uv (installed into the
# venv if missing), for every platform and every Python that requires-python allows (a package whose newest
# release needs a newer Python gets one line per Python range, with a marker); versions already in $(LOCK) are
# kept where they still fit. Run it after changing a dependency in pyproject.toml and commit the lock with it.
LOCK_PYTHON = $(shell sed -n 's/^requires-python *= *">=\([0-9.]*\)".*/\1/p' pyproject.toml)
lock:
	@if [ ! -x "$(VPY)" ]; then $(PYTHON) -m venv $(VENV); fi
	@$(VPY) -m uv --version >/dev/null 2>&1 || $(PIP_INSTALL) '$(UV_PIN)'
	@mkdir -p $(dir $(LOCK))
	printf '%s\n' $(TORCH_PINS) | $(VPY) -m uv pip compile pyproject.toml --all-extras --constraint - \
	  --constraint $(LOCK_CONSTRAINTS) \
	  --universal --python-version $(LOCK_PYTHON) --output-file $(LOCK) --quiet $(LOCK_FLAGS) \
	  --custom-compile-command 'make lock (every platform, Python >= $(LOCK_PYTHON))'
	@echo "==> wrote $(LOCK)"

# ---- JupyterLab: the chapters with the project's kernel, on 127.0.0.1 ----------------------------
# The lab extra has a stamp of its own, so `make book` never installs JupyterLab; `make test` does, for
# tests/test_lab.py. A chapter run in Lab is a hand run: ADVLOGITS_EXECUTED_DIR is the build's alone, so its
# claims go to _build/hand-runs/PROFILE/ and never over the build's. The token is made here to print the URL,
# and passed in the environment (JUPYTER_TOKEN), not on the command line where `ps` would show it.
$(LAB_STAMP): $(STAMP)
	@echo "==> the lab extra (JupyterLab) in $(ENV_NAME)"
	$(call install_extras,lab)
	touch $@

lab: $(LAB_STAMP) setup data
	@token=$$($(VPY) -c 'import secrets; print(secrets.token_hex(24))'); \
	echo "==> JupyterLab in chapters/ with the kernel \"Python 3 (advlogits)\"; Ctrl-C twice stops it. Open:"; \
	echo "    http://127.0.0.1:$(LAB_PORT)/lab?token=$$token"; \
	cd chapters && JUPYTER_TOKEN=$$token exec env -u ADVLOGITS_EXECUTED_DIR '$(abspath $(BIN))/jupyter-lab' \
	  --no-browser --ip=127.0.0.1 --port=$(LAB_PORT) --ServerApp.port_retries=0 \
	  --MappingKernelManager.default_kernel_name=python3 --LabApp.news_url=None \
	  --LabApp.extension_manager=readonly $(if $(filter 0,$(shell id -u)),--allow-root)

# ---- system packages: installed only when asked for, by these two targets --------------------------------
# Each installs, with apt-get and as root, the Debian packages of its list (FILE:PACKAGE) whose file or command is
# missing; elsewhere (not root, not Debian) it says which are missing. `.ci/run` runs `make system-packages`
# before `make test`; no other target installs a system package.
system-packages: PACKAGES := $(SYSTEM_PACKAGES)
browser: PACKAGES := $(BROWSER_PACKAGES)
system-packages browser:
	@missing=; \
	for pair in $(PACKAGES); do \
	  file=$${pair%:*}; [ -e "$$file" ] || command -v "$$file" >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -z "$$missing" ]; then \
	  echo "Debian's $(strip $(foreach p,$(PACKAGES),$(lastword $(subst :, ,$(p))))): installed"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "==> installing Debian's$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	else \
	  echo "note: Debian's$$missing missing, and apt-get is not usable here (not root or not Debian): run \`sudo make $@\`"; \
	fi

# `make test`'s tests drive a browser through its site: without one, it stops before anything else, saying what to run.
check-browser:
	@for file in $(foreach p,$(BROWSER_PACKAGES),$(firstword $(subst :, ,$(p)))); do \
	  [ -x "$$file" ] || { echo "error: $$file is missing, and the site tests need Debian's chromium and chromium-driver: run \`sudo make system-packages\` (or \`make browser\` as root), then \`make test\`" >&2; exit 1; }; \
	done

# ---- data: where the profile's data set comes from (nothing is installed here) ---------------------------
data:
ifeq ($(PROFILE),paper)
	@echo "note: PROFILE=paper uses CIFAR-10, which torchvision downloads on first use (see \$$ADVLOGITS_DATA)."
else
	@if [ ! -f "$(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz" ]; then \
	  echo "note: no Fashion-MNIST in $(FASHION_MNIST_DIR): the data loader downloads it through torchvision on first use (see \$$ADVLOGITS_DATA); \`sudo make system-packages\` installs Debian's $(FASHION_MNIST_PACKAGE)"; \
	fi
endif

# ---- offline assets: the site serves MathJax 3, RequireJS and the ipywidgets HTML manager itself ----
# package-lock.json pins them; `npm ci` fetches them into node_modules/ and the files the pages load are
# copied to $(OFFLINE_DIR)/, which `stage` puts into the book as _offline/ (html_static_path in
# _config.yml, so they end up in _static/). Not the book's _static/ itself: Jupyter Book would add every
# .js file in it to every page.
OFFLINE_DIR := _build/offline
OFFLINE_STAMP := _build/offline.stamp
# tex-mml-chtml.js is what Sphinx loads; the folders hold the parts it loads on demand (fonts, menu, a11y).
# The widget manager's icon fonts go to widgets/html-manager/ (see book/_assets/widgets/offline-setup.js).
MATHJAX_PARTS := tex-mml-chtml.js a11y adaptors input output sre ui
HTML_MANAGER := node_modules/@jupyter-widgets/html-manager

# npm writes node_modules/.package-lock.json on every install: it marks node_modules as up to date.
NODE_STAMP := node_modules/.package-lock.json

$(NODE_STAMP): package.json package-lock.json
	@command -v $(NPM) >/dev/null 2>&1 || { \
	  echo "error: '$(NPM)' not found: the site build packs MathJax and the widget scripts with npm; run \`sudo make system-packages\` (Debian's npm), or install Node.js and pass NPM=/path/to/npm" >&2; exit 1; }
	@echo "==> installing the offline assets pinned in package-lock.json with npm"
	$(NPM) ci --ignore-scripts --no-audit --no-fund
	touch $@

# Copying is cheap, so it is redone whenever the Makefile changes too.
$(OFFLINE_STAMP): $(NODE_STAMP) Makefile
	rm -rf $(OFFLINE_DIR)
	mkdir -p $(OFFLINE_DIR)/mathjax $(OFFLINE_DIR)/widgets
	cd node_modules/mathjax/es5 && cp -R $(MATHJAX_PARTS) $(abspath $(OFFLINE_DIR))/mathjax/
	cp node_modules/mathjax/LICENSE $(OFFLINE_DIR)/mathjax/
	cp node_modules/requirejs/require.js $(HTML_MANAGER)/dist/embed-amd.js $(OFFLINE_DIR)/widgets/
	mkdir -p $(OFFLINE_DIR)/widgets/html-manager
	cp $(addprefix $(HTML_MANAGER)/dist/*.,woff2 woff ttf) $(OFFLINE_DIR)/widgets/html-manager/
	touch $@

offline: $(OFFLINE_STAMP)

# ---- execution: one papermill run per chapter, redone when the chapter, the library or DEVICE changes
# The parameters file changes only when DEVICE does, so a new DEVICE re-executes the chapters.
# (`make execute`'s sub-make takes the file as its parent left it.)
ifeq ($(CHAPTER_JOBS_NOW),)
$(PARAMS_FILE): FORCE
	@mkdir -p $(@D)
	@printf 'device=%s\n' '$(DEVICE)' > $@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi
endif

# Before the chapters execute, `advlogits run` computes every unit of the book's plan (models, evaluations, logits)
# with PLAN_WORKERS one-thread workers of PLAN_EXECUTOR: by default one per core, so that every machine computes
# with one torch thread per unit (the same bytes on any number of cores) and uses all its cores; PLAN_WORKERS=1 is
# the one-process build, with the same numbers. The plan runs again only when a chapter would (a chapter, the
# library, the set-up or DEVICE changed); from a warm store it finds every unit stored in seconds. A finished
# `advlogits run` has stored every unit, so the stamp lets CHAPTER_JOBS chapters run at once. Its last line (what it
# computed, on how many workers) is kept in $(PLAN_RUN), where `make test`'s tests read it.
$(PLAN_STAMP): $(CHAPTERS) $(LIB_SOURCES) $(STAMP) $(PARAMS_FILE) | setup data
	@mkdir -p $(@D)
	@echo "==> computing the plan of PROFILE=$(PROFILE) with $(PLAN_WORKERS) $(PLAN_EXECUTOR) workers"
	$(VPY) -m advlogits run --profile $(PROFILE) --device $(DEVICE) --executor $(PLAN_EXECUTOR) \
	  --workers $(PLAN_WORKERS) --threads 1 | tee $(PLAN_RUN)
	@echo "==> advlogits run finished, all stored: the chapters run $(CHAPTER_JOBS) at a time"
	@echo $(CHAPTER_JOBS) > $@

# papermill writes into .partial/ first (kept there when a chapter fails, for inspection) and the
# result is moved into place only when every cell ran. The chapter's claims are removed before it runs and
# again when it fails, so that the scorecard never gathers the claims of a chapter that did not finish. The
# command is shown as it runs, the lines that handle a failure only when it fails.
CHAPTER_RUN = ADVLOGITS_EXECUTED_DIR="$(abspath $(EXEC_DIR))" $(VPY) -m papermill $< $(EXEC_DIR)/.partial/$*.ipynb \
  -k python3 --engine advlogits --cwd chapters $(PAPERMILL_FLAGS) -p profile $(PROFILE) -p device $(DEVICE)
$(EXEC_DIR)/%.ipynb: chapters/%.ipynb $(LIB_SOURCES) $(STAMP) $(PARAMS_FILE) $(PLAN_STAMP) | setup data
	@echo "==> executing $< (profile=$(PROFILE), device=$(DEVICE))"
	@mkdir -p $(EXEC_DIR)/.partial
	@rm -f $(EXEC_DIR)/claims/$*.json
	@echo '$(CHAPTER_RUN)'
	@$(CHAPTER_RUN) \
	  || { rm -f $(EXEC_DIR)/claims/$*.json; \
	       echo "error: $< failed at PROFILE=$(PROFILE); its claims are removed and the partly executed notebook is $(EXEC_DIR)/.partial/$*.ipynb" >&2; exit 1; }
	mv $(EXEC_DIR)/.partial/$*.ipynb $@

# The scorecard gathers every other chapter's claims: it re-runs whenever any of them re-executes.
$(SCORECARD): $(filter-out $(SCORECARD),$(EXECUTED))

# With nothing left to compute, up to CHAPTER_JOBS chapters run at once (the scorecard last). They keep their torch
# threads (so their numbers), which then wait for work asleep (OMP_WAIT_POLICY=PASSIVE) instead of spinning:
# spinning threads of two processes on two cores made chapter 2's linear check 7 times slower.
execute: $(PLAN_STAMP)
	@if [ -z "$(CHAPTERS)" ]; then echo "error: no chapters/*.ipynb to execute" >&2; exit 1; fi
	@jobs=$$(cat $(PLAN_STAMP) 2>/dev/null); case "$$jobs" in ''|*[!0-9]*|0) jobs=1;; esac; \
	if [ $$jobs -gt 1 ]; then export OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE}; fi; \
	$(MAKE) --no-print-directory -j$$jobs CHAPTER_JOBS_NOW=1 $(EXECUTED)

# ---- the site: a source tree whose chapters are the executed copies, built with warnings as errors
# STUDENT=1: the staged chapters lose their solutions and the book's title says which edition it is; with
# REPO_URL set, the staged _config.yml gains the repository and the launch buttons (scripts/book_config.py).
stage: execute $(OFFLINE_STAMP)
	rm -rf $(SRC_DIR)
	mkdir -p $(SRC_DIR)
	cp _config.yml _toc.yml $(SRC_DIR)/
	cp -R book chapters docs $(SRC_DIR)/
	cp $(EXECUTED) $(SRC_DIR)/chapters/
	cp -R $(OFFLINE_DIR) $(SRC_DIR)/_offline
	mkdir -p $(SRC_DIR)/book/_generated  # the landing page's copy of the scorecard (figure and count)
	cp $(EXEC_DIR)/scorecard.png $(EXEC_DIR)/scorecard_summary.md $(SRC_DIR)/book/_generated/
ifneq ($(strip $(REPO_URL)),)
	$(VPY) scripts/book_config.py $(SRC_DIR)/_config.yml repository '$(REPO_URL)' '$(REPO_BRANCH)'
endif
ifneq ($(filter-out 0,$(STUDENT)),)
	$(VPY) -m advlogits.release.editions $(SRC_DIR)/chapters/*.ipynb
	$(VPY) scripts/book_config.py $(SRC_DIR)/_config.yml student
endif

# -W turns every Sphinx warning into an error, -n (nitpicky) warns of every reference that resolves to nothing.
# The built scorecard is then compared with the profile's committed record (results/PROFILE/) in one line, which
# never fails the build: the verdicts that match or changed, how far the estimates moved, the CPUs if they differ.
site: stage
	rm -rf $(JB_OUT)  # a page removed from the book must not linger in the site
	$(BIN)/jupyter-book build $(SRC_DIR) --path-output $(JB_OUT) --all -W -n --keep-going
	@echo "==> built $(SITE_DIR)/index.html from $(EXEC_DIR)/"
	@line=$$($(VPY) -m advlogits.record_check --profile $(PROFILE) --scorecard $(EXEC_DIR)/scorecard.json) \
	  || line="not compared with the record: the comparison failed (above)"; \
	echo "==> the scorecard against results/$(PROFILE)/: $$line"

book: site
	rm -rf $(HTML_DIR)
	cp -R $(SITE_DIR) $(HTML_DIR)
	@echo "==> the book (PROFILE=$(PROFILE)$(if $(filter-out 0,$(STUDENT)), student edition)) is at $(HTML_DIR)/index.html"

# The repository's address, written into every chapter's hidden Colab cell (commit the result once).
repository: | setup
	@test -n "$(REPO_URL)" || { echo "error: REPO_URL is empty; run e.g. make repository REPO_URL=https://github.com/OWNER/REPO" >&2; exit 2; }
	$(VPY) -m advlogits.release.launch '$(REPO_URL)' $(CHAPTERS)


# ---- lint: the first step of `make test`, and what .pre-commit-config.yaml's hooks check before a commit ------
# ruff with pyproject.toml's settings (the chapters' code cells are linted, not formatted: chapters/ruff.toml),
# then tests/test_hygiene.py as a script (standard library only): the chapters committed without outputs, their
# shown code within the page's width, pre-commit's ruff the lock's. It needs no set-up: ruff is the lock's version,
# the venv's own when the venv has that one (read from its metadata, nothing is run), else ruff alone in RUFF_VENV.
RUFF_VERSION := $(shell sed -n 's/^ruff==\([^ ;]*\).*/\1/p' $(LOCK) 2>/dev/null)
VENV_RUFF_METADATA := $(BIN)/../lib/python*/site-packages/ruff-$(RUFF_VERSION).dist-info
VENV_RUFF := $(if $(RUFF_VERSION),$(and $(wildcard $(BIN)/ruff),$(wildcard $(VENV_RUFF_METADATA))))
RUFF := $(if $(VENV_RUFF),$(BIN)/ruff,$(RUFF_VENV)/bin/ruff)
RUFF_STAMP := $(RUFF_VENV)/.ruff-$(RUFF_VERSION).stamp

lint: $(if $(VENV_RUFF),,$(RUFF_STAMP))
	$(RUFF) check .
	$(RUFF) format --check .
	$(PYTHON) tests/test_hygiene.py

$(RUFF_STAMP):
	@test -n "$(RUFF_VERSION)" || { echo "error: $(LOCK) pins no ruff, so make lint cannot tell which to run: run \`make lock\`" >&2; exit 1; }
	@echo "==> ruff $(RUFF_VERSION) alone in $(RUFF_VENV), for make lint"
	rm -rf $(RUFF_VENV)
	$(PYTHON) -m venv $(RUFF_VENV)
	$(RUFF_VENV)/bin/python -m pip install --disable-pip-version-check --quiet 'ruff==$(RUFF_VERSION)'
	touch $@

# ---- tests: lint, the smoke book, then every test in one pytest run -------------
# The smoke book is built as `make book` builds (the plan on one local worker per core, then the chapters), into a
# store of its own emptied first: the tests then find in it exactly what the default build computed, compare it
# with a serial run's (tests/test_pipeline_executors.py) and drive a browser through the site it made.
TEST_HOME := _build/test/store
TEST_BOOK := PROFILE=smoke PLAN_EXECUTOR=local ADVLOGITS_HOME=$(abspath $(TEST_HOME))
test: check-browser setup $(LAB_STAMP) $(PAPER_STAMP)
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory data PROFILE=smoke
	rm -rf $(TEST_HOME) _build/executed/smoke
	@$(MAKE) --no-print-directory site $(TEST_BOOK)
	@$(MAKE) --no-print-directory site $(TEST_BOOK) STUDENT=1
	@echo "==> every test: unit, browser (the sites in _build/jb/smoke*/) and the build's store ($(TEST_HOME))"
	ADVLOGITS_SITE_DIR="$(abspath _build/jb/smoke/_build/html)" \
	ADVLOGITS_STUDENT_SITE_DIR="$(abspath _build/jb/smoke-student/_build/html)" \
	ADVLOGITS_BOOK_HOME="$(abspath $(TEST_HOME))" ADVLOGITS_BOOK_EXECUTED="$(abspath _build/executed/smoke)" \
	$(if $(filter-out 0,$(PYTEST_WORKERS)),OMP_NUM_THREADS=1 )$(BIN)/pytest \
	  -m "not bench$(if $(strip $(PYTEST_MARK)), and ($(PYTEST_MARK)))" \
	  $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist worksteal) --durations=10 $(PYTEST_ARGS)

# ---- benchmarks: each prints a JSON line and a summary and writes $(BENCH_DIR)/<name>.json -----------
# `book` builds the book twice (empty store, then warm) in temporary folders: many minutes at PROFILE=cpu.
# `make_test` runs `make test` in a fresh clone of HEAD, as CI does (about six minutes on two cores).
# `gpu` always measures and prices the paper profile, whatever PROFILE says.
bench: setup data
	$(BIN)/pytest -m bench tests/test_benchmarks.py $(PYTEST_ARGS)
	@for name in $(BENCH); do \
	  if [ "$$name" = gpu ]; then profile=paper; else profile=$(PROFILE); fi; \
	  if [ "$$name" = book ]; then flags="$(BENCH_BOOK_FLAGS)"; else flags=; fi; \
	  echo "==> benchmark $$name (profile=$$profile, device=$(DEVICE)) $$flags"; \
	  $(VPY) -m benchmarks.$$name --profile $$profile --device $(DEVICE) --out $(BENCH_DIR)/$$name.json $$flags; \
	done

# The GPU check (benchmarks/gpu/): synthetic CIFAR-format data written on the spot, so no data set is needed.
gpu-check: setup
	$(VPY) -m benchmarks.gpu --out $(BENCH_DIR)/gpu.json

# ---- results and publishing ------------------------------------------------------------------------
# `make results` copies the built profile's scorecard and writes its environment (commit, versions, device,
# the chapters' papermill durations) into results/PROFILE/, the only generated files that are committed; for
# PROFILE=cpu it also rewrites the README's "Results at a glance" block from them. It never builds: it refuses
# a scorecard that is missing or older than its sources, naming `make book` (advlogits.release.record).
results: setup
	$(VPY) -m advlogits.release.record --profile $(PROFILE) --root .
	@$(MAKE) --no-print-directory cite

# `make cite` rewrites the README's "How to cite" block from CITATION.cff (`make results` runs it too); bump the
# file's version and date-released with a release, then run it. tests/test_release_citation.py checks that they agree.
cite: setup
	$(VPY) -m advlogits.release.citation --root .

# `make publish` pushes the built site to a gh-pages branch with ghp-import: -n adds .nojekyll (GitHub Pages
# must serve the _static/ and _images/ folders as they are), -f replaces the branch, which holds nothing but
# the site, so a fresh clone can publish too. ghp-import writes the branch in the git clone PUBLISH_FROM
# (this one by default) and pushes it to PUBLISH_REMOTE, a remote's name or a repository's path or URL.
PUBLISH_COMMIT = $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

publish:
	@if [ ! -f "$(PUBLISH_SITE)/index.html" ]; then \
	  echo "error: no site at $(PUBLISH_SITE)/index.html: build it first with \`make book\` (or pass PUBLISH_SITE=...)" >&2; \
	  exit 1; \
	fi
	@if [ ! -x "$(BIN)/ghp-import" ]; then \
	  echo "error: $(BIN)/ghp-import is missing: run \`make setup\` (it comes with the book extra)" >&2; exit 1; \
	fi
	cd '$(PUBLISH_FROM)' && '$(abspath $(BIN))/ghp-import' -n -p -f -r '$(PUBLISH_REMOTE)' -b '$(PUBLISH_BRANCH)' \
	  -m 'The book, built from commit $(PUBLISH_COMMIT)' '$(abspath $(PUBLISH_SITE))'
	@echo "==> pushed $(PUBLISH_SITE) to the $(PUBLISH_BRANCH) branch of $(PUBLISH_REMOTE)"

clean:
	rm -rf _build

FORCE:
