#!/usr/bin/env bash
# Rebuild the portal's vendored front-end files from package-lock.json (npm ci): the engine itself never needs
# Node.js; this only refreshes what is committed under src/twinengine/ui/static/vendor and tests/e2e/vendor.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --ignore-scripts --no-audit --no-fund
out=../src/twinengine/ui/static/vendor
tests=../tests/e2e/vendor
rm -rf "$out" "$tests" && mkdir -p "$out"/{uplot,leaflet,topojson-client,world-atlas} "$tests"
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css node_modules/uplot/LICENSE "$out/uplot/"
cp node_modules/leaflet/dist/leaflet.js node_modules/leaflet/dist/leaflet.css node_modules/leaflet/LICENSE "$out/leaflet/"
cp node_modules/topojson-client/dist/topojson-client.min.js node_modules/topojson-client/LICENSE "$out/topojson-client/"
cp node_modules/world-atlas/countries-50m.json node_modules/world-atlas/LICENSE "$out/world-atlas/"
cp node_modules/axe-core/axe.min.js node_modules/axe-core/LICENSE "$tests/"
# Natural Earth's boundaries (in world-atlas) are in the public domain: https://www.naturalearthdata.com/about/terms-of-use/
printf 'Country boundaries: Natural Earth 1:50m (public domain), as TopoJSON by world-atlas (ISC, see LICENSE).\n' \
  > "$out/world-atlas/NOTICE"
echo "vendored: $(cd "$out" && find . -type f | sort | tr '\n' ' ')"
