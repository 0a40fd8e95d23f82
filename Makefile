# meshfleet.mesh: the two commands of the README, and their parts.
SHELL := /bin/bash

.PHONY: test lint unit sanity build molecule images venv lab lab-down bench cjdroute

## Every check, from a fresh machine (this is what CI runs).
test:
	scripts/test.sh

lint:
	scripts/test.sh lint
unit:
	scripts/test.sh unit
sanity:
	scripts/test.sh sanity
build:
	scripts/test.sh build
## One scenario: make molecule SCENARIOS=cjdns MESHFLEET_SUITES=bookworm
molecule:
	scripts/test.sh molecule
images:
	scripts/build-images.sh
venv:
	scripts/setup-venv.sh

## The local lab: containers standing for inventories/example, converged and validated.
lab:
	scripts/lab.sh up
lab-down:
	scripts/lab.sh down

## Benchmarks (not tests): fleet converge times, filters.
bench:
	source scripts/env.sh && benchmarks/bench_fleet.py && benchmarks/bench_allocate_addresses.py && benchmarks/bench_cjdns_ipv6.py

## cjdroute for amd64, arm64 and armhf from a cjdns source tarball, into dist/cjdroute:
## make cjdroute [CJDNS_SOURCE=path-or-URL CJDNS_SOURCE_SHA256=sum CJDNS_ARCHES="arm64"]
cjdroute:
	scripts/cjdroute.sh
