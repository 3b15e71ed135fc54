#!/usr/bin/env bash
# Rebuild dashboard/niivue/static/niivue.umd.js: NiiVue's own UMD build from its npm package
# (@niivue/niivue, BSD-2-Clause), pinned by version and checked by sha256. Needs node and npm.
set -euo pipefail
VERSION=0.69.0
SHA256=$(cat "$(dirname "$0")/../dashboard/niivue/static/niivue.sha256" 2>/dev/null || true)
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@niivue/niivue@$VERSION" >/dev/null && tar -xzf niivue-niivue-$VERSION.tgz)
cp "$work/package/dist/niivue.umd.js" "$here/dashboard/niivue/static/niivue.umd.js"
cp "$work/package/LICENSE" "$here/dashboard/niivue/static/NIIVUE-LICENSE" 2>/dev/null \
  || printf 'NiiVue %s, BSD-2-Clause: https://github.com/niivue/niivue/blob/main/LICENSE\n' "$VERSION" \
  > "$here/dashboard/niivue/static/NIIVUE-LICENSE"
got=$(sha256sum "$here/dashboard/niivue/static/niivue.umd.js" | cut -d' ' -f1)
if [ -n "$SHA256" ] && [ "$got" != "$SHA256" ]; then
  echo "niivue.umd.js $VERSION has sha256 $got, expected $SHA256" >&2
  exit 1
fi
echo "$got" > "$here/dashboard/niivue/static/niivue.sha256"
echo "NiiVue $VERSION: dashboard/niivue/static/niivue.umd.js (sha256 $got)"
