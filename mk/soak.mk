# The chaos soak (soak/): random clients, faults and restarts against the reference server,
# every message checked. `make soak DURATION=600 SEED=7` replays seed 7's choices for 10 min;
# FACE= picks how the server under test runs (soak/faces.py; default threaded).

DURATION ?= 120
SEED ?=
FACE ?=
SOAK_CI_SEED := 20240601

soak: $(STAMP)
	$(PY) -m soak --duration $(DURATION) $(if $(SEED),--seed $(SEED)) $(if $(FACE),--face $(FACE))

# One short run per face; each summary goes to a file, the screen keeps the one-line verdicts.
SOAK_CI_FACES := threaded async
soak-ci: $(STAMP)
	@mkdir -p $(BUILD)
	status=0; for face in $(SOAK_CI_FACES); do \
	  $(PY) -m soak --duration 20 --seed $(SOAK_CI_SEED) --face $$face \
	    --json $(BUILD)/soak-ci-$$face.json || status=1; \
	done; exit $$status

# The checks themselves, on records made by hand: each passes a faithful run and catches a fault.
test-soak: $(STAMP)
	$(PY) -m pytest -q soak/tests

# ruff already covers soak/ in lint-server; the types are checked here.
lint-soak: $(STAMP)
	MYPYPATH=server $(BIN)/mypy --strict soak

LINT_TARGETS += lint-soak
TEST_TARGETS += test-soak soak-ci

.PHONY: soak soak-ci test-soak lint-soak
