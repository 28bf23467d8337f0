#!/usr/bin/env bash
# Installs what only the tests need: the official ACP TypeScript SDK (an
# independent client for the bridge) and real agents under /usr, which the
# VM's read-only /usr view shows. Run after scripts/deps.sh.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi

# The end-to-end tests drive the bridge with the official ACP TypeScript SDK
# (node, npm), make network requests from the VM with curl, wget and node
# (all from the host's /usr, which the VM sees), and build the private
# network namespace of the fake internet with ip (iproute2).
need=()
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v wget >/dev/null 2>&1 || need+=(wget)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
sdk="$(dirname "$0")/../internal/e2e/testdata/sdkclient"
if [ ! -d "$sdk/node_modules/@agentclientprotocol/sdk" ]; then
  echo "deps: npm ci in $sdk" >&2
  (cd "$sdk" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# Real agents for the end-to-end tests, under /usr so the VM's read-only
# /usr view has them (node itself comes from the host's /usr too).
agents=/usr/local/lib/acp-sandbox-test-agents
# The versions are the presets' (internal/presets).
if [ ! -x "$agents/bin/claude-agent-acp" ] || [ ! -x "$agents/bin/gemini" ] || [ ! -x "$agents/bin/codex-acp" ]; then
  echo "deps: npm install agents into $agents" >&2
  $SUDO npm install -g --prefix "$agents" --no-audit --no-fund --loglevel=error \
    @zed-industries/claude-agent-acp@0.23.1 @google/gemini-cli@0.61.0 @zed-industries/codex-acp@0.16.0 >/dev/null
fi

