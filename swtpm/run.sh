#!/bin/sh
# Start the hermetic swtpm in STATE_DIR (provisioning it first if needed).
#   swtpm/run.sh STATE_DIR            start it, print `export ...` lines for the TCTI, leave it up
#   swtpm/run.sh STATE_DIR CMD ARGS   start it, run CMD with TPM2TOOLS_TCTI/ECASH_TPM_TCTI set,
#                                     then stop it (also on failure) and return CMD's status
# Stop a left-running one with: ecash-tpm swtpm stop --state STATE_DIR
set -eu
if [ $# -lt 1 ]; then
    echo "usage: $0 STATE_DIR [CMD [ARGS...]]" >&2
    exit 2
fi
state=$1
shift
ECASH_TPM=${ECASH_TPM:-ecash-tpm}
if ! command -v "$ECASH_TPM" >/dev/null 2>&1; then
    ECASH_TPM="${PYTHON:-python3} -m ecash_tpm"
fi
tcti=$($ECASH_TPM swtpm start --state "$state")
if [ $# -eq 0 ]; then
    echo "export TPM2TOOLS_TCTI='$tcti'"
    echo "export ECASH_TPM_TCTI='$tcti'"
    exit 0
fi
trap '$ECASH_TPM swtpm stop --state "$state" >/dev/null' EXIT INT TERM
TPM2TOOLS_TCTI=$tcti ECASH_TPM_TCTI=$tcti "$@"
