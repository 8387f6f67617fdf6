#!/usr/bin/env bash
# Install what the benchmark needs besides treadle itself:
#   - wrk (load generator), nginx (the ceiling) and redis-server (a session store) from Debian, if
#     missing;
#   - the Python peers (Twisted, aiohttp, uvicorn, granian, hypercorn, websockets, Starlette) and
#     matplotlib in bench/.venv-peers.
# Safe to re-run: it only does work when something is missing or requirements-peers.txt changed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-peers"
python="${PEERS_PYTHON:-python3}"

need_apt=()
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v taskset >/dev/null 2>&1 || need_apt+=(util-linux)
# The Redis the sessions scenario starts for treadle's Redis store (its row is skipped without it).
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# h2load, the HTTP/2 load generator of protocols.py's h2 scenario.
command -v h2load >/dev/null 2>&1 || need_apt+=(nghttp2-client)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup-peers: apt-get install ${need_apt[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need_apt[@]}"
fi

stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements-peers.txt" | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "setup-peers: $venv is up to date"
    exit 0
fi

echo "setup-peers: creating $venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r "$here/requirements-peers.txt"
# granian ships binary wheels only for some platforms: a peer when it installs, skipped otherwise.
if ! "$venv/bin/python" -m pip install -q -r "$here/requirements-granian.txt"; then
    echo "setup-peers: granian did not install; its rows will be absent"
fi
echo "$want" >"$stamp"
"$venv/bin/python" -m pip list --format=freeze | grep -iE '^(twisted|aiohttp|uvicorn|uvloop|httptools|granian|hypercorn|websockets|wsproto|starlette|matplotlib)=' || true
