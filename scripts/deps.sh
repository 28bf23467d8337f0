#!/usr/bin/env bash
# Installs the system packages acp-sandbox needs on Debian 12 (run as root).
# Idempotent: does nothing that is already done.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  SUDO=sudo
else
  SUDO=
fi

need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
command -v apt-get >/dev/null 2>&1 || { echo "deps: this script needs Debian's apt-get" >&2; exit 1; }
[ -e /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)

# The guest kernel is fetched with `apt-get download linux-image-amd64`'s
# dependency, which needs apt's package lists.
lists_empty=true
if compgen -G "/var/lib/apt/lists/*Packages*" >/dev/null; then lists_empty=false; fi

if [ ${#need[@]} -gt 0 ] || $lists_empty; then
  echo "deps: apt-get update" >&2
  $SUDO apt-get update -qq
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Go 1.26 or newer builds acp-sandbox (Debian's golang package is older).
export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null 2>&1; then
  echo "deps: Go 1.26+ is required (https://go.dev/dl/, installed at /usr/local/go)" >&2
  exit 1
fi
