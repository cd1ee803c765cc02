# advlogits: set up, execute the chapters, build the book, run the tests.
#
#   make book                           set up, execute every chapter (profile cpu), build _build/html
#   make book PROFILE=paper DEVICE=cuda the same at the paper's scale, on a GPU
#   make test                           set up, pytest, every chapter at profile smoke, book build, site tests
#   make bench                          time PGD, training epochs and the book build (JSON in _build/bench/)
#   make gpu-check                      on a GPU (< 5 min): throughput, bf16 vs fp32, the paper profile's GPU-hours
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
# Unit tests run in this many pytest-xdist worker processes, each with one torch thread (a worker per core
# beats threads inside one process for these small models); 0 runs them in this process instead.
PYTEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
PAPERMILL_FLAGS ?= --no-progress-bar --log-output
# Before the chapters execute, `advlogits run` computes every unit of the book's plan (models, evaluations,
# logits) with PLAN_WORKERS one-thread workers of PLAN_EXECUTOR (local or ray); 0 leaves it to the chapters,
# one unit after another in one process.
PLAN_WORKERS ?= 0
PLAN_EXECUTOR ?= local
FASHION_MNIST_DIR ?= /usr/share/datasets/fashion-mnist
# Benchmarks run by `make bench`, any of: $(BENCHMARKS) (gpu, the GPU check, is also `make gpu-check`)
BENCH ?= attack_throughput train_epoch book

# Pinned first so that pip never resolves another torch; torchattacks is a test-only reference
# installed without its dependencies (they would downgrade requests/idna and break Sphinx).
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
NO_DEPS_PINS := torchattacks==3.5.1
FASHION_MNIST_PACKAGE := dataset-fashion-mnist
PROFILES := smoke cpu paper
BENCHMARKS := attack_throughput train_epoch book gpu
BENCH_DIR := _build/bench

BIN := $(VENV)/bin
VPY := $(BIN)/python
# pip byte-compiles what it installs: that is ~30 s of the set-up, but do not skip it (--no-compile), since
# where PYTHONDONTWRITEBYTECODE is set (as on our CI machines) every import would then compile torch anew.
PIP_INSTALL := $(VPY) -m pip install --disable-pip-version-check
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

ifneq ($(filter-out $(BENCHMARKS),$(BENCH)),)
$(error BENCH=$(BENCH) names unknown benchmarks; choose from: $(BENCHMARKS), e.g. `make bench BENCH=attack_throughput`)
endif

CHAPTERS := $(sort $(wildcard chapters/*.ipynb))
LIB_SOURCES := $(sort $(shell find lib/advlogits -name '*.py' 2>/dev/null))
EXEC_DIR := _build/executed/$(PROFILE)
EXECUTED := $(CHAPTERS:chapters/%=$(EXEC_DIR)/%)
SCORECARD := $(EXEC_DIR)/05_scorecard.ipynb
PARAMS_FILE := $(EXEC_DIR)/.params
PLAN_STAMP := $(EXEC_DIR)/.plan
SRC_DIR := _build/src/$(PROFILE)
JB_OUT := _build/jb/$(PROFILE)
SITE_DIR := $(JB_OUT)/_build/html

.PHONY: help setup data execute stage site book test bench gpu-check clean FORCE

help:
	@echo "advlogits: an executable book replicating arXiv 2108.12001"
	@echo
	@echo "  make book      set up $(VENV), get the data, execute every chapter, build _build/html"
	@echo "  make test      set up, pytest, execute every chapter at PROFILE=smoke, build the book (-W), site tests"
	@echo "  make setup     create $(VENV) and install the project (redone only when pyproject.toml changes)"
	@echo "  make data      install Debian's $(FASHION_MNIST_PACKAGE) if it is missing and we are root"
	@echo "  make offline   pack MathJax and the widget scripts with npm into $(OFFLINE_DIR) (the site reads offline)"
	@echo "  make browser   install Debian's chromium and chromium-driver for the site tests, if missing and root"
	@echo "  make execute   execute the chapters into _build/executed/PROFILE/ (skips up-to-date ones)"
	@echo "  make site      execute, stage _build/src/PROFILE/ and build it into $(JB_OUT)/_build/html"
	@echo "  make bench     run the benchmarks in benchmarks/ (BENCH=$(BENCH)), JSON results in $(BENCH_DIR)/"
	@echo "  make gpu-check on a CUDA device, in under 5 minutes: training and attack images/s (fp32, bf16, compile),"
	@echo "                 peak memory, bf16 vs fp32 agreement, the paper profile's GPU-hours; $(BENCH_DIR)/gpu.json"
	@echo "                 (without a GPU: a tiny run that only checks the script)"
	@echo "  make clean     remove _build (never the store)"
	@echo
	@echo "settings: PROFILE=$(PROFILE) (one of: $(PROFILES))  DEVICE=$(DEVICE) (auto, cpu, cuda, ...)"
	@echo "          PLAN_WORKERS=$(PLAN_WORKERS) (>0: compute the plan with that many workers first)  PLAN_EXECUTOR=$(PLAN_EXECUTOR)"
	@echo "          VENV=$(VENV)  PYTHON=$(PYTHON)  PYTEST_MARK=$(PYTEST_MARK)  PYTEST_ARGS=$(PYTEST_ARGS)"
	@echo "          REPO_URL=$(REPO_URL) (empty: no launch buttons)  REPO_BRANCH=$(REPO_BRANCH)  NPM=$(NPM)"
	@echo "          ADVLOGITS_HOME=$${ADVLOGITS_HOME:-(library default, ~/.cache/advlogits)}"
	@echo "          ADVLOGITS_DATA=$${ADVLOGITS_DATA:-(library default)}"

# ---- set-up: a venv, redone only when pyproject.toml changes -----------------------------------
$(STAMP): pyproject.toml
	@echo "==> setting up $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) $(TORCH_PINS)
	$(PIP_INSTALL) -e '.[book,test,cluster]'
	$(PIP_INSTALL) --no-deps $(NO_DEPS_PINS)
	$(VPY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (advlogits)"
	touch $@

setup: $(STAMP)
	@$(VPY) -c 'import pathlib, sys; from jupyter_client.kernelspec import KernelSpecManager; \
	d = pathlib.Path(KernelSpecManager().find_kernel_specs()["python3"]).absolute(); \
	sys.exit(0 if d.is_relative_to(pathlib.Path(sys.prefix).absolute()) else \
	f"the python3 kernelspec at {d} is not the one of $(VENV); remove it or run `make setup` again")'

# ---- site settings: override on the command line or from the environment -----------------------
# The repository's public address (e.g. https://github.com/OWNER/advlogits) and branch: with an address,
# the site gets launch buttons (Colab, Binder) and a repository button; without one (the default) it has
# none of them. Download buttons (.ipynb, source, PDF) need no address and are always there.
REPO_URL ?=
REPO_BRANCH ?= main
NPM ?= npm

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
	@if ! command -v $(NPM) >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "==> installing Debian's npm to pack the site's offline assets"; \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y npm; \
	  else \
	    echo "error: '$(NPM)' not found: the site build needs npm (Node.js) to pack MathJax and the widget" >&2; \
	    echo "       scripts; install Node.js with npm, or pass NPM=/path/to/npm" >&2; exit 1; \
	  fi; \
	fi
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

.PHONY: offline browser
offline: $(OFFLINE_STAMP)

# ---- the browser for the site tests: Debian's chromium and chromium-driver, never a browser download
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then \
	  :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "==> installing Debian's chromium and chromium-driver for the site tests"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; \
	else \
	  echo "note: /usr/bin/chromium or /usr/bin/chromedriver is missing and apt-get is not usable here (not root"; \
	  echo "      or not Debian): the site tests will fail until Debian's chromium and chromium-driver are installed."; \
	fi

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

# The plan runs again only when a chapter would (the library, the set-up or DEVICE changed); from a warm
# store it finds every unit stored in seconds.
$(PLAN_STAMP): $(LIB_SOURCES) $(STAMP) $(PARAMS_FILE) | setup data
ifneq ($(PLAN_WORKERS),0)
	@echo "==> computing the plan of PROFILE=$(PROFILE) with $(PLAN_WORKERS) $(PLAN_EXECUTOR) workers"
	$(VPY) -m advlogits run --profile $(PROFILE) --device $(DEVICE) --executor $(PLAN_EXECUTOR) \
	  --workers $(PLAN_WORKERS) --threads 1
endif
	@mkdir -p $(@D)
	@touch $@

# papermill writes into .partial/ first (kept there when a chapter fails, for inspection) and the
# result is moved into place only when every cell ran.
$(EXEC_DIR)/%.ipynb: chapters/%.ipynb $(LIB_SOURCES) $(STAMP) $(PARAMS_FILE) $(PLAN_STAMP) | setup data
	@echo "==> executing $< (profile=$(PROFILE), device=$(DEVICE))"
	@mkdir -p $(EXEC_DIR)/.partial
	ADVLOGITS_EXECUTED_DIR="$(abspath $(EXEC_DIR))" \
	$(VPY) -m papermill $< $(EXEC_DIR)/.partial/$*.ipynb -k python3 --cwd chapters $(PAPERMILL_FLAGS) \
	  -p profile $(PROFILE) -p device $(DEVICE) \
	  || { echo "error: $< failed at PROFILE=$(PROFILE); the partly executed notebook is $(EXEC_DIR)/.partial/$*.ipynb" >&2; exit 1; }
	mv $(EXEC_DIR)/.partial/$*.ipynb $@

# The scorecard gathers every other chapter's claims: it re-runs whenever any of them re-executes.
$(SCORECARD): $(filter-out $(SCORECARD),$(EXECUTED))

execute: $(EXECUTED)
	@if [ -z "$(CHAPTERS)" ]; then echo "error: no chapters/*.ipynb to execute" >&2; exit 1; fi

# ---- the site: a source tree whose chapters are the executed copies, built with warnings as errors
stage: execute $(OFFLINE_STAMP)
	rm -rf $(SRC_DIR)
	mkdir -p $(SRC_DIR)
	cp _config.yml _toc.yml $(SRC_DIR)/
	cp -R book chapters docs $(SRC_DIR)/
	cp $(EXECUTED) $(SRC_DIR)/chapters/
	cp -R $(OFFLINE_DIR) $(SRC_DIR)/_offline
ifneq ($(strip $(REPO_URL)),)
	$(VPY) -c "$$REPO_CONFIG_PY" $(SRC_DIR)/_config.yml '$(REPO_URL)' '$(REPO_BRANCH)'
endif

# With REPO_URL set, the staged _config.yml gains the repository and the launch buttons (Colab, Binder).
define REPO_CONFIG_PY
import sys, yaml
path, url, branch = sys.argv[1:]
config = yaml.safe_load(open(path, encoding="utf8"))
config["repository"] = {"url": url, "branch": branch, "path_to_book": ""}
config["launch_buttons"] = {"notebook_interface": "jupyterlab", "binderhub_url": "https://mybinder.org",
                            "colab_url": "https://colab.research.google.com"}
config.setdefault("html", {})["use_repository_button"] = True
yaml.safe_dump(config, open(path, "w", encoding="utf8"), sort_keys=False)
endef
export REPO_CONFIG_PY

site: stage
	rm -rf $(JB_OUT)  # a page removed from the book must not linger in the site
	$(BIN)/jupyter-book build $(SRC_DIR) --path-output $(JB_OUT) --all -W --keep-going
	@echo "==> built $(SITE_DIR)/index.html from _build/executed/$(PROFILE)/"

book: site
	rm -rf _build/html
	cp -R $(SITE_DIR) _build/html
	@echo "==> the book (PROFILE=$(PROFILE)) is at _build/html/index.html"

# ---- tests: unit tests, then every chapter at the smoke profile, then the site ------------------
test: setup browser
	@$(MAKE) --no-print-directory data PROFILE=smoke
	$(if $(filter-out 0,$(PYTEST_WORKERS)),OMP_NUM_THREADS=1 )$(BIN)/pytest \
	  -m "not site and not bench$(if $(strip $(PYTEST_MARK)), and ($(PYTEST_MARK)))" \
	  $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist worksteal) --durations=10 $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory site PROFILE=smoke
	@if [ -f tests/test_site.py ]; then \
	  echo "==> site tests against _build/jb/smoke/_build/html"; \
	  ADVLOGITS_SITE_DIR="$(abspath _build/jb/smoke/_build/html)" $(BIN)/pytest -m site tests/test_site.py $(PYTEST_ARGS); \
	else \
	  echo "note: no tests/test_site.py, so no site tests to run"; \
	fi

# ---- benchmarks: each prints a JSON line and a summary and writes $(BENCH_DIR)/<name>.json -----------
# `book` builds the book twice (empty store, then warm) in temporary folders: many minutes at PROFILE=cpu.
# `gpu` always measures and prices the paper profile, whatever PROFILE says.
bench: setup data
	$(BIN)/pytest -m bench tests/test_benchmarks.py $(PYTEST_ARGS)
	@for name in $(BENCH); do \
	  if [ "$$name" = gpu ]; then profile=paper; else profile=$(PROFILE); fi; \
	  echo "==> benchmark $$name (profile=$$profile, device=$(DEVICE))"; \
	  $(VPY) -m benchmarks.$$name --profile $$profile --device $(DEVICE) --out $(BENCH_DIR)/$$name.json; \
	done

# The GPU check (benchmarks/gpu.py): synthetic CIFAR-format data written on the spot, so no data set is needed.
gpu-check: setup
	$(VPY) -m benchmarks.gpu --out $(BENCH_DIR)/gpu.json

clean:
	rm -rf _build

FORCE:
