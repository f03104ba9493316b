#!/usr/bin/env bash
# Install the load tools the stress checks and HTTP/2 tests drive (wrk, slowhttptest, h2load and
# nghttp from nghttp2-client, nginx for the proxy test) from Debian's packages if they are missing. Needs root (CI runs as root); otherwise it names the packages.
set -euo pipefail
missing=()
for tool in wrk slowhttptest h2load:nghttp2-client nghttp:nghttp2-client nginx:nginx-light; do
    package=${tool#*:}
    command -v "${tool%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${tool%%:*}" ] || [[ " ${missing[*]-} " == *" $package "* ]] || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "stress-tools: missing ${missing[*]}: install them (apt-get install ${missing[*]}); their checks fail without them" >&2
    exit 0
fi
echo "stress-tools: installing ${missing[*]}" >&2
apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
