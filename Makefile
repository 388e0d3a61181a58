# unbrick: recover and flash embedded devices, dozens at once.
# `make help` lists the targets.

GO      ?= go
PKGS    ?= ./...
DATA    ?= ./var
LISTEN  ?= 127.0.0.1:8080
UNITS   ?= 8
BENCH_UNITS ?= 64
export CGO_ENABLED = 1
# The Go release every target builds and tests with: go1.26.11 fixes the
# standard library vulnerabilities govulncheck reports in earlier 1.26
# releases. The go command fetches it through the module proxy once.
export GOTOOLCHAIN = go1.26.11

.PHONY: help deps run test race bench lint fuzz soak pi build clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z]+:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## install the Debian packages and build the peers the tests and benchmarks need (scripts/deps.sh)
	@scripts/deps.sh

build: ## build bin/unbrick
	$(GO) build -o bin/unbrick ./cmd/unbrick

run: ## run the station on a virtual bench of $(UNITS) bricked units, page on http://$(LISTEN)
	$(GO) run ./cmd/unbrick demo --units $(UNITS) --listen $(LISTEN) --data $(DATA)

test: deps ## vet, then run every test with the race detector
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

race: deps ## run every test three times with the race detector, to shake out flakes
	$(GO) test -race -count=3 -timeout 40m $(PKGS)

bench: deps ## install the peers, run the benchmarks and `unbrick bench --units $(BENCH_UNITS)`, print tables and write bench.json
	$(GO) run ./scripts/bench -out bench.json -units $(BENCH_UNITS)

lint: ## gofmt, go vet, staticcheck and govulncheck
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: the files above need formatting"; exit 1; }
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)
	@scripts/vulncheck.sh

FUZZTIME ?= 15s
fuzz: ## run every fuzz target for $(FUZZTIME) each; failing inputs stay in testdata/fuzz
	@FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

SOAK ?= --duration 2m --kills 20
soak: ## 32 faulty units round after round, then 20 SIGKILLs; SOAK="--duration 30m" for longer
	$(GO) build -o bin/unbrick ./cmd/unbrick
	bin/unbrick soak $(SOAK)

pi: ## build a linux/arm64 binary for a Raspberry Pi (cgo via Debian's cross compiler)
	@scripts/deps.sh pi
	CC=aarch64-linux-gnu-gcc GOOS=linux GOARCH=arm64 $(GO) build -o bin/unbrick-linux-arm64 ./cmd/unbrick
	@file bin/unbrick-linux-arm64

clean: ## remove build outputs and the demo's data
	rm -rf bin var bench.json
