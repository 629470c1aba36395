#!/bin/bash
# Runs management_client.py (Python grpcio, stubs from the .proto files only) against a real
# converge-server over TLS (certificates from tools/certs/make-certs). Needs Debian's python3-grpcio and python3-protobuf (tools/dev deps installs
# them).
set -euo pipefail
here="$TEST_SRCDIR/$TEST_WORKSPACE"
exec /usr/bin/python3 "$here/tests/interop/management_client.py" \
  "$here/services/server/converge-server" "$here/protos" "$TEST_TMPDIR" "$here/tools/certs/make-certs"
