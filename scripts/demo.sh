#!/usr/bin/env bash
# A sandboxed demo: a throwaway workspace, a command in its microVM that
# looks around, and proof that the host's secrets stayed outside.
set -euo pipefail
bin=$(command -v acp-sandbox || echo /usr/local/bin/acp-sandbox)
ws=$(mktemp -d /tmp/acp-sandbox-demo.XXXXXX)
trap '"$bin" rm -w "$ws" >/dev/null 2>&1 || true; rm -rf "$ws"' EXIT
echo "print('hello from a project file')" > "$ws/hello.py"

echo "== host: $(uname -sr), workspace $ws"
"$bin" run -w "$ws" -- sh -c '
  echo "== guest: $(uname -sr) on $(hostname), user $(id -un) (uid $(id -u))"
  echo "== the workspace, at the same path: $(pwd)"; ls -l
  python3 hello.py 2>/dev/null || echo "(no python3 on this host)"
  echo "== what of the host is visible?"
  for p in /root /home/*/.ssh /etc/shadow /etc/ssh; do
    if [ -e "$p" ] && [ -n "$(ls -A "$p" 2>/dev/null)" ]; then echo "  $p: VISIBLE"; else echo "  $p: not there"; fi
  done
  echo "written in the VM" > from-vm.txt'
echo "== host sees the file the VM wrote: $(cat "$ws/from-vm.txt") ($(stat -c %U "$ws/from-vm.txt"))"
"$bin" ls
"$bin" stop -w "$ws"

echo
echo "== an ACP session, as an editor runs it: acp-sandbox -- AGENT, with a built-in scripted agent in the VM"
"$bin" demo
