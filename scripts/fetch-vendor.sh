#!/usr/bin/env bash
# Re-fetch the browser libraries we serve ourselves (intranets have no CDN) from the npm registry,
# at pinned versions, with their licence files. Run it only to upgrade; the files are committed.
set -euo pipefail
HTMX_VERSION=2.0.7
ECHARTS_VERSION=6.1.0
dest="$(cd "$(dirname "$0")/.." && pwd)/src/yikatong/web/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "htmx.org@${HTMX_VERSION}" "echarts@${ECHARTS_VERSION}" >/dev/null
mkdir htmx echarts
tar -xzf "htmx.org-${HTMX_VERSION}.tgz" -C htmx
tar -xzf "echarts-${ECHARTS_VERSION}.tgz" -C echarts
mkdir -p "$dest"
cp htmx/package/dist/htmx.min.js "$dest/htmx.min.js"
cp htmx/package/LICENSE "$dest/htmx.LICENSE"
cp echarts/package/dist/echarts.min.js "$dest/echarts.min.js"
cp echarts/package/LICENSE "$dest/echarts.LICENSE"
printf 'htmx.org %s\necharts %s\n' "$HTMX_VERSION" "$ECHARTS_VERSION" > "$dest/VERSIONS"
echo "vendor files updated in $dest"
