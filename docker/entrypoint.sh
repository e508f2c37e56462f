#!/bin/sh
# ecash-tpm container entrypoint: optionally start a private swtpm, then run the command.
#
# SWTPM_STATE_DIR  when set, provision (first start) and start a hermetic swtpm there with
#                  `ecash-tpm swtpm start`; wallet commands then find it with
#                  `--swtpm-state "$SWTPM_STATE_DIR"`. The emulator listens on the container's
#                  loopback only and is reaped by tini (PID 1) when the container stops.
set -eu

if [ -n "${SWTPM_STATE_DIR:-}" ]; then
    mkdir -p "$SWTPM_STATE_DIR"
    # After a container restart the state dir still records the old swtpm's pid and ports;
    # `swtpm start` only trusts a pid that is alive *and* is swtpm serving this directory, so
    # it starts a fresh emulator on the provisioned state instead of signalling a stranger.
    tcti="$(ecash-tpm swtpm start --state "$SWTPM_STATE_DIR")"
    export TPM2TOOLS_TCTI="$tcti"
    echo "ecash-tpm-entrypoint: swtpm running, TCTI $tcti" >&2
fi

exec "$@"
