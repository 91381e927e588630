#!/usr/bin/env bash
# Installs what the project needs from the system, on Debian/Ubuntu: Python's venv
# module, a C compiler and Python's headers (the router's chunk reader), InfluxDB 1.x
# (influxd) and its CLI (influx: the front door's tests drive it), PostgreSQL (the
# alerts tests start a throw-away server of their own) and Chromium (the page's browser
# tests drive it through Playwright, which never downloads a browser here). Elsewhere it
# says what to install and fails.
set -euo pipefail

need=()
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3 python3-venv)
# The router's chunk reader is C (setup.py): a compiler and Python's headers build it.
command -v cc >/dev/null || need+=(gcc libc6-dev)
python3 -c 'import os, sysconfig; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")' \
    2>/dev/null || need+=(python3-dev)
if [ -z "${INFLUXD:-}" ] && ! command -v influxd >/dev/null && [ ! -x /usr/bin/influxd ]; then
    need+=(influxdb)
fi
if [ -z "${INFLUX_CLI:-}" ] && ! command -v influx >/dev/null; then
    need+=(influxdb-client)
fi
if [ -z "${PG_BINDIR:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    need+=(postgresql)
fi
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
    need+=(chromium)
fi
[ ${#need[@]} -eq 0 ] && exit 0

if [ -f /etc/debian_version ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing ${need[*]} with apt-get"
    $sudo apt-get update -qq
    # Only what is asked for: the influxdb and postgresql packages' own services are not
    # needed (the project starts one influxd per local shard, and the tests their own
    # PostgreSQL, on ports of their own).
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
else
    echo "missing: ${need[*]}. Install Python 3.11+ with venv and its headers, a C compiler (cc)," >&2
    echo "InfluxDB 1.x (influxd on PATH," >&2
    echo "or INFLUXD=/path/to/influxd) and its CLI (influx on PATH, or INFLUX_CLI=/path/to/influx)," >&2
    echo "PostgreSQL (or PG_BINDIR=/dir/of/initdb) and" >&2
    echo "Chromium (chromium on PATH, or CHROMIUM=/path/to/chromium), then run make again." >&2
    exit 1
fi
