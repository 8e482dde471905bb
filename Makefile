# Set-up and checks. `make demo` and `make test` work on a fresh machine: they create
# .venv, install PyTorch (the pinned build below) and contrastkit, then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
EXTRAS ?= dev,graph,federated,video,audio,text,restoration,export,tensorboard,docs

.PHONY: demo test test-slow venv browser lint typecheck bench wheel docs clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PINS)
	$(PIP) install -q -e ".[$(EXTRAS)]" $(TORCH_PINS)
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/contrastkit train moco-hcl-digits

# The HTML page of `contrastkit compare` is tested in headless Chromium: Debian's package where
# this machine can install it (root and apt), else those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && \
	    apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "note: no chromium (not root, no apt, or no package index); the browser tests of compare will skip"

test: venv browser
	$(PY) -m pytest

test-slow: venv  # end-to-end checks CI does not select: every real-data smoke, Flower deployment, DDP via the CLI
	$(PY) -m pytest -m slow

# the documentation site (MkDocs Material + mkdocstrings) into site/; --strict: a broken link, a
# missing reference or a docstring warning fails it (tests/test_docs.py builds it too)
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks

typecheck: venv
	$(VENV)/bin/mypy src

# sdist and wheel into dist/, built by the venv's setuptools (nothing downloaded); a test installs
# the wheel into a fresh venv and runs it from outside the source tree (tests/test_packaging.py)
wheel: venv
	rm -rf dist build
	$(PY) -c "from setuptools import build_meta as b; b.build_sdist('dist'); b.build_wheel('dist')" >/dev/null
	@ls dist

bench: venv
	$(PIP) install -q -e ".[bench]" $(TORCH_PINS)
	$(PY) benchmarks/losses.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache
