#!/bin/sh
# ecash-tpm container entrypoint: optionally start a private swtpm, bootstrap a party, then run
# the command.
#
# SWTPM_STATE_DIR  when set, provision (first start) and start a hermetic swtpm there with
#                  `ecash-tpm swtpm start`; wallet commands then find it with
#                  `--swtpm-state "$SWTPM_STATE_DIR"`. The emulator listens on the container's
#                  loopback only and is reaped by tini (PID 1) when the container stops.
# SWTPM_EK_CA_EXPORT  with SWTPM_STATE_DIR: a directory that receives the swtpm CA's public
#                  certificates (root and intermediate, never its key) before the emulator
#                  starts, for an issuer to trust through ECASH_TPM_DEPLOY_EK_TRUST.
#
# Party bootstrap: for `ecash-tpm <role> serve`, when the central bank's admin token is given
# (the compose secret /run/secrets/ecash_tpm_admin_token, or $ECASH_TPM_DEPLOY_TOKEN_FILE), run
# `ecash-tpm deploy init-party` first -- the same steps as `ecash-tpm demo`: the party's keys
# are made on its first start, its signing key is certified by the central bank over HTTPS and
# its TLS certificate issued for ECASH_TPM_DEPLOY_TLS_HOST (both kept while valid; the root it
# got first stays pinned, and the central bank's TLS certificate must chain to it before the
# admin token is sent). The central bank issues its own TLS certificate with its CA. What the party learns on the way (the
# opener key Hop, trust-anchor paths) is exported as ECASH_TPM_<SECTION>_<KEY> for `serve`.
# A token that is empty, short or a placeholder stops the container: compose turns an unset
# variable into an empty secret, and a central bank bootstrapped from it would run with
# certify/revoke disabled while every other party failed to get a certificate.
#   ECASH_TPM_DEPLOY_CENTRAL_BANK  central bank URL (default https://centralbank:8080)
#   ECASH_TPM_DEPLOY_SUPERVISION   supervision department URL (default https://supervision:8084)
#   ECASH_TPM_DEPLOY_TLS_HOST      the name other containers reach this party by (the compose
#                                  service name): added to its TLS certificate (`--tls-host`)
#   ECASH_TPM_DEPLOY_EK_TRUST      issuer only: ':'-separated EK CA files or directories to add
#                                  to its trust store (`init-party --ek-trust`) on every start
set -eu

# The shortest token accepted; `ecash-tpm centralbank admin-token` makes 43 characters.
MIN_TOKEN_LENGTH=32

die() {
    echo "ecash-tpm-entrypoint: $*" >&2
    exit 78  # EX_CONFIG: a restart will not help, the configuration must change
}

# Refuse an admin token that cannot be the operator's: empty, short, or a documentation
# placeholder. The token is read into a local variable only, never exported.
check_admin_token() {
    [ -r "$1" ] || die "cannot read the admin token file $1"
    token="$(tr -d ' \t\r\n' <"$1")"
    [ -n "$token" ] || die "the admin token in $1 is empty: set ECASH_TPM_ADMIN_TOKEN (docker/gen-env.sh or \`ecash-tpm centralbank admin-token\`)"
    [ "${#token}" -ge "$MIN_TOKEN_LENGTH" ] ||
        die "the admin token in $1 is shorter than $MIN_TOKEN_LENGTH characters: make one with \`ecash-tpm centralbank admin-token\`"
    case "$(printf '%s' "$token" | tr '[:upper:]' '[:lower:]')" in
        *change*me* | *example* | *placeholder* | *dev-only* | *insecure* | *xxxxxxxx* | *...*)
            die "the admin token in $1 is a placeholder: make one with \`ecash-tpm centralbank admin-token\`" ;;
    esac
    token=""
}

# The swtpm CA's public certificates (layout of ecash_tpm/swtpm: var/lib/swtpm-localca/ in the
# state directory), copied under a temporary name and renamed, so a reader sees whole files.
export_ek_ca() {
    ca="$SWTPM_STATE_DIR/var/lib/swtpm-localca"
    mkdir -p "$1"
    for name in swtpm-localca-rootca-cert.pem issuercert.pem; do
        [ -s "$ca/$name" ] || die "the swtpm in $SWTPM_STATE_DIR has no CA certificate $name"
        cp "$ca/$name" "$1/.$name.tmp"
        chmod 0644 "$1/.$name.tmp"
        mv -f "$1/.$name.tmp" "$1/wallet-swtpm-$name"
    done
    echo "ecash-tpm-entrypoint: swtpm EK CA exported to $1" >&2
}

# `ecash-tpm deploy init-party` for role $1 (positional parameters are this function's own).
init_party() {
    set -- --role "$1" --export --admin-token-file "$token_file" \
        --central-bank "${ECASH_TPM_DEPLOY_CENTRAL_BANK:-https://centralbank:8080}" \
        --supervision-url "${ECASH_TPM_DEPLOY_SUPERVISION:-https://supervision:8084}"
    if [ -n "${ECASH_TPM_DEPLOY_TLS_HOST:-}" ]; then
        set -- "$@" --tls-host "$ECASH_TPM_DEPLOY_TLS_HOST"
    fi
    if [ "$2" = issuer ] && [ -n "${ECASH_TPM_DEPLOY_EK_TRUST:-}" ]; then
        # Split on ':' only; -f: a path is never a glob.
        set -f
        old_ifs="$IFS"
        IFS=":"
        for path in $ECASH_TPM_DEPLOY_EK_TRUST; do
            if [ -n "$path" ]; then
                set -- "$@" --ek-trust "$path"
            fi
        done
        IFS="$old_ifs"
        set +f
    fi
    ecash-tpm deploy init-party "$@"
}

if [ -n "${SWTPM_STATE_DIR:-}" ]; then
    mkdir -p "$SWTPM_STATE_DIR"
    if [ -n "${SWTPM_EK_CA_EXPORT:-}" ]; then
        # Provisioning makes the CA (a provisioned state is left alone); export before the
        # emulator runs, so whoever waits for it finds the CA.
        ecash-tpm swtpm provision --state "$SWTPM_STATE_DIR" >&2
        export_ek_ca "$SWTPM_EK_CA_EXPORT"
    fi
    # After a container restart the state dir still records the old swtpm's pid and ports;
    # `swtpm start` only trusts a pid that is alive *and* is swtpm serving this directory, so
    # it starts a fresh emulator on the provisioned state instead of signalling a stranger.
    tcti="$(ecash-tpm swtpm start --state "$SWTPM_STATE_DIR")"
    export TPM2TOOLS_TCTI="$tcti"
    echo "ecash-tpm-entrypoint: swtpm running, TCTI $tcti" >&2
fi

token_file="${ECASH_TPM_DEPLOY_TOKEN_FILE:-/run/secrets/ecash_tpm_admin_token}"
if [ "$#" -ge 3 ] && [ "$1" = "ecash-tpm" ] && [ "$3" = "serve" ]; then
    # A token named explicitly, or the compose secret present: bootstrap. Neither: the party
    # was set up by hand (docs/operations.md), and serve checks its own configuration.
    if [ -n "${ECASH_TPM_DEPLOY_TOKEN_FILE:-}" ] || [ -e "$token_file" ]; then
        check_admin_token "$token_file"
        role="$2"
        settings="$(init_party "$role")"
        # Lines of `export ECASH_TPM_<SECTION>_<KEY>='value'` (values shell-quoted by the CLI).
        eval "$settings"
        echo "ecash-tpm-entrypoint: $role bootstrapped (keys, central-bank and TLS certificates)" >&2
    fi
fi

exec "$@"
