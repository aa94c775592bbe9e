# The two commands of the README: `make demo` and `make test`. Each creates .venv and installs what is
# missing (pinned by constraints.txt) before it runs.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit serve lock clean docs-api docs-config
.PHONY: docs-manifest

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "twinengine needs Python 3.11 or newer (set PYTHON=python3.x)")'
	$(PYTHON) -m venv $(VENV)

# uv installs the pinned set in parallel (about 1 min cold, where pip took about 5): it is bootstrapped into
# the venv by pip at the pinned version, and sees pip's find-links (where local wheels such as PyTorch's CPU
# build lie). Where uv cannot install (an index only pip's configuration knows), pip does it instead.
EXTRAS := dev,ml,slurm,formats,calibration

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	@echo "installing twinengine and its extras into $(VENV) (pinned by constraints.txt; about a minute the first time)"
	@start=$$(date +%s); links=$$("$(BIN)/python" -m pip config get global.find-links 2>/dev/null || echo "$${PIP_FIND_LINKS:-}"); \
	{ "$(BIN)/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt uv \
	  && "$(BIN)/uv" pip install --quiet --compile-bytecode --python "$(BIN)/python" -c constraints.txt \
	     $$(for l in $$links; do printf -- '--find-links %s ' "$$l"; done) -e '.[$(EXTRAS)]'; } \
	|| { echo "uv could not install the set; pip installs it instead (a few minutes)"; \
	     "$(BIN)/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[$(EXTRAS)]'; } \
	&& echo "installed in $$(( $$(date +%s) - start )) s"
	@touch $@

demo: $(STAMP)
	"$(BIN)/twin" demo $(ARGS)

# Tests run in TEST_WORKERS processes (pytest-xdist), a file per worker at a time: more workers than cores, so
# that the CPU stays busy while a test waits on a server, a subprocess or a container (docs/development.md has
# the figures). TEST_WORKERS=0 runs in one process.
# Files are handed out longest first (tests/conftest.py); xdist would otherwise sort them by their number of
# tests, which sent the one-test official openEO suite (minutes long) last.
TEST_WORKERS ?= 4

# mypy (about a minute on one core, from a fresh clone) checks the types while the tests start: its report
# is printed when the tests end, and either failing fails the command. The tests keep their bytecode even
# where the environment says not to (PYTHONDONTWRITEBYTECODE): each worker collects every test module, and
# rewriting their assertions again each time cost 9 s of CPU per collection.
test: $(STAMP)
	"$(BIN)/ruff" check src tests bench examples docs
	@echo '"$(BIN)/mypy" (beside the tests; its report follows theirs)'
	@"$(BIN)/mypy" > "$(VENV)/mypy.out" 2>&1 & typing=$$!; \
	env -u PYTHONDONTWRITEBYTECODE "$(BIN)/python" -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS); tests=$$?; \
	wait $$typing; typed=$$?; echo "mypy:"; cat "$(VENV)/mypy.out"; \
	[ $$typed -eq 0 ] || echo "mypy found type errors (above)" >&2; \
	[ $$tests -eq 0 ] && [ $$typed -eq 0 ]

unit: $(STAMP)
	"$(BIN)/python" -m pytest tests/unit $(PYTEST_ARGS)

lint: $(STAMP)
	"$(BIN)/ruff" check src tests bench examples docs

typecheck: $(STAMP)
	"$(BIN)/mypy"

serve: $(STAMP)
	"$(BIN)/twin" serve $(ARGS)

# The API reference of the SDKs, HTML from their docstrings (offline), into $(API_OUT): built, not committed.
API_MODULES ?= twinengine.app twinengine.client
API_OUT     ?= docs/api

docs-api: $(STAMP)
	"$(BIN)/python" -m pdoc --docformat restructuredtext --no-show-source -o "$(API_OUT)" $(API_MODULES)

# docs/configuration.md, written from the settings object (a unit test fails when it is out of date).
docs-config: $(STAMP)
	"$(BIN)/python" -m twinengine.settings_reference > docs/configuration.md

# docs/manifest.md, written from the manifest's model (a unit test fails when it is out of date).
docs-manifest: $(STAMP)
	"$(BIN)/python" -m twinengine.catalog.reference > docs/manifest.md

lock: | $(BIN)/python
	rm -rf $(VENV)-lock && $(PYTHON) -m venv $(VENV)-lock
	grep '^torch==' constraints.txt > $(VENV)-lock/torch.txt
	$(VENV)-lock/bin/pip install --quiet -c $(VENV)-lock/torch.txt -e '.[dev,ml,slurm,formats,calibration]'
	{ sed -n '1,4p' constraints.txt; $(VENV)-lock/bin/pip freeze --exclude-editable | grep -v -e '^twinengine' -e '^torch=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf $(VENV)-lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
