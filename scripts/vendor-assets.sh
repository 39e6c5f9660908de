#!/usr/bin/env bash
# Re-fetch the vendored front-end assets at their pinned versions from the npm registry, with their licences,
# and rewrite the checksum manifest that tests/test_vendored_assets.py checks. Run it after changing a pin.
set -euo pipefail
cd "$(dirname "$0")/.."

# package@version  file-in-package  destination
ASSETS=(
  "htmx.org@2.0.11 dist/htmx.min.js service/static/vendor/htmx/htmx.min.js"
  "htmx.org@2.0.11 LICENSE service/static/vendor/htmx/LICENSE"
  "chart.js@4.6.1 dist/chart.umd.min.js service/static/vendor/chartjs/chart.umd.min.js"
  "chart.js@4.6.1 LICENSE.md service/static/vendor/chartjs/LICENSE.md"
  "swagger-ui-dist@5.35.0 swagger-ui-bundle.js service/static/vendor/swagger-ui/swagger-ui-bundle.js"
  "swagger-ui-dist@5.35.0 swagger-ui.css service/static/vendor/swagger-ui/swagger-ui.css"
  "swagger-ui-dist@5.35.0 LICENSE service/static/vendor/swagger-ui/LICENSE"
  "redoc@2.5.2 bundles/redoc.standalone.js service/static/vendor/redoc/redoc.standalone.js"
  "redoc@2.5.2 LICENSE service/static/vendor/redoc/LICENSE"
  "axe-core@4.14.1 axe.min.js tests/vendor/axe-core/axe.min.js"
  "axe-core@4.14.1 LICENSE tests/vendor/axe-core/LICENSE"
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for entry in "${ASSETS[@]}"; do
  read -r spec file dest <<<"$entry"
  dir="$work/${spec//[@\/]/_}"
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "$spec" >/dev/null && tar xzf ./*.tgz)
  fi
  mkdir -p "$(dirname "$dest")"
  cp "$dir/package/$file" "$dest"
done

{
  echo "# sha256  path  (package@version) — written by scripts/vendor-assets.sh"
  for entry in "${ASSETS[@]}"; do
    read -r spec _file dest <<<"$entry"
    echo "$(sha256sum "$dest" | cut -d' ' -f1)  $dest  $spec"
  done
} > vendor-manifest.txt
echo "vendored ${#ASSETS[@]} files; manifest in vendor-manifest.txt"
