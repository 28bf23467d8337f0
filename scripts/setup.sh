#!/usr/bin/env bash
# Sets up acp-sandbox on Debian 12: system packages, a static build installed
# as acp-sandbox, and the guest kernel (fetched once with apt-get download).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
export PATH="$PATH:/usr/local/go/bin"

if [ "$(id -u)" = 0 ]; then bindir=/usr/local/bin; else bindir="$HOME/.local/bin"; fi
mkdir -p "$bindir"
echo "setup: building acp-sandbox (CGO_ENABLED=0: the binary is also the VM's init)" >&2
CGO_ENABLED=0 go build -trimpath -o "$bindir/acp-sandbox" ./cmd/acp-sandbox
echo "setup: installed $bindir/acp-sandbox" >&2
case ":$PATH:" in *":$bindir:"*) ;; *) echo "setup: add $bindir to your PATH" >&2 ;; esac
"$bindir/acp-sandbox" doctor
