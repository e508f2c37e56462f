#!/bin/sh
# Provision a hermetic swtpm state directory (own CA inside it, RSA-2048 + ECC P-384 EK certs).
# Usage: swtpm/provision.sh STATE_DIR [--force] [--platform-cert]
set -eu
if [ $# -lt 1 ]; then
    echo "usage: $0 STATE_DIR [--force] [--platform-cert]" >&2
    exit 2
fi
state=$1
shift
ECASH_TPM=${ECASH_TPM:-ecash-tpm}
if ! command -v "$ECASH_TPM" >/dev/null 2>&1; then
    ECASH_TPM="${PYTHON:-python3} -m ecash_tpm"
fi
exec $ECASH_TPM swtpm provision --state "$state" "$@"
