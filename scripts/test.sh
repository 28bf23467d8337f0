#!/usr/bin/env bash
# Runs the whole test suite, VM tests included: on a machine set up with
# scripts/setup.sh a skipped VM test is a failure (ACP_SANDBOX_REQUIRE_VM=1).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/test-deps.sh
export PATH="$PATH:/usr/local/go/bin"
test -z "$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
go vet ./...
ACP_SANDBOX_REQUIRE_VM=1 go test -count=1 -timeout 45m "$@" ./...
