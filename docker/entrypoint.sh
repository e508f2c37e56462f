#!/bin/sh
# ecash-tpm container entrypoint: optionally start a private swtpm, bootstrap a party, then run
# the command.
#
# SWTPM_STATE_DIR  when set, provision (first start) and start a hermetic swtpm there with
#                  `ecash-tpm swtpm start`; wallet commands then find it with
#                  `--swtpm-state "$SWTPM_STATE_DIR"`. The emulator listens on the container's
#                  loopback only and is reaped by tini (PID 1) when the container stops.
#
# Party bootstrap: for `ecash-tpm <role> serve`, when the central bank's admin token is readable
# (the compose secret /run/secrets/ecash_tpm_admin_token, or $ECASH_TPM_DEPLOY_TOKEN_FILE), run
# `ecash-tpm deploy init-party` first -- the same steps as `ecash-tpm demo`: the party's keys
# are made on its first start and its signing key is certified by the central bank over HTTP
# (kept while valid; the root it got first stays pinned). What the party learns on the way (the
# opener key Hop, trust-anchor paths) is exported as ECASH_TPM_<SECTION>_<KEY> for `serve`.
#   ECASH_TPM_DEPLOY_CENTRAL_BANK  central bank URL (default http://centralbank:8080)
#   ECASH_TPM_DEPLOY_SUPERVISION   supervision department URL (default http://supervision:8084)
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

token_file="${ECASH_TPM_DEPLOY_TOKEN_FILE:-/run/secrets/ecash_tpm_admin_token}"
if [ "$#" -ge 3 ] && [ "$1" = "ecash-tpm" ] && [ "$3" = "serve" ] && [ -s "$token_file" ]; then
    role="$2"
    settings="$(ecash-tpm deploy init-party --role "$role" --export \
        --admin-token-file "$token_file" \
        --central-bank "${ECASH_TPM_DEPLOY_CENTRAL_BANK:-http://centralbank:8080}" \
        --supervision-url "${ECASH_TPM_DEPLOY_SUPERVISION:-http://supervision:8084}")"
    # Lines of `export ECASH_TPM_<SECTION>_<KEY>='value'` (values shell-quoted by the CLI).
    eval "$settings"
    echo "ecash-tpm-entrypoint: $role bootstrapped (keys, central-bank certificate)" >&2
fi

exec "$@"
