# Benchmarks (bench/README.md). `make bench` measures ours, pipe-io-server 1.0.3 and the floor;
# a part of it: make bench CASES=pingpong SERVERS=ours,floor REPS=1 SECONDS=1
# where our server spends its time per message: make bench-profile [CASES=stream64,stream4m]
BENCH_BUILD := $(BUILD)/bench
BENCH_BINS := $(BENCH_BUILD)/loadclient $(BENCH_BUILD)/floor $(BENCH_BUILD)/cecho
BENCH_CFLAGS := -std=c11 -O2 -Wall -Wextra -Werror -pthread
# pipe-io-server 1.0.3 has our import name, so it lives in a venv of its own.
LEGACY_VENV := .venv-legacy
LEGACY_STAMP := $(LEGACY_VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
BENCH_ARGS = $(if $(CASES),--cases $(CASES)) $(if $(SERVERS),--servers $(SERVERS)) \
  $(if $(REPS),--reps $(REPS)) $(if $(SECONDS),--seconds $(SECONDS)) $(if $(COUNT),--count $(COUNT))
# Where our server's time goes per message: the ladder (bench/ladder.py: from a Python byte
# echo to ours one step at a time, measured together), then py-spy's division of ours by step.
# Sampling wants many round trips; by default the request-reply path (one CPU) and the
# pipelined one.
PROFILE_DEFAULT := pingpong,stream64
PROFILE_CASES = --cases $(or $(CASES),$(PROFILE_DEFAULT))
$(BENCH_BINS): $(BENCH_BUILD)/%: bench/%.c
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) -o $@ $<

$(LEGACY_STAMP):
	$(PYTHON) -m venv $(LEGACY_VENV)
	$(LEGACY_VENV)/bin/python -m pip install --quiet pipe-io-server==1.0.3
	touch $@

# The optional `bench` extra: matplotlib for the chart, py-spy for bench-profile.
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	touch $@

bench: $(STAMP) $(BENCH_STAMP) $(LEGACY_STAMP) $(BENCH_BINS)
	$(PY) -m bench $(BENCH_ARGS)

bench-profile: $(STAMP) $(BENCH_STAMP) $(BENCH_BINS)
	$(PY) -m bench --servers ladder $(PROFILE_CASES) --reps $(or $(REPS),3) --output $(BENCH_BUILD)/ladder
	$(PY) -m bench --servers ours $(PROFILE_CASES) --reps 1 --profile $(BENCH_BUILD)/profile \
	  --count $(or $(COUNT),300000) --seconds $(or $(SECONDS),4)

# Seconds long, ours and the floor only, no speed assertions: keeps the bench from rotting.
bench-smoke: $(STAMP) $(BENCH_BINS)
	timeout 300 $(PY) -m bench --smoke

# ruff already covers bench/ in lint-server; the types are checked here.
lint-bench: $(STAMP)
	$(BIN)/mypy --strict bench

LINT_TARGETS += lint-bench
TEST_TARGETS += bench-smoke

.PHONY: bench bench-profile bench-smoke lint-bench
