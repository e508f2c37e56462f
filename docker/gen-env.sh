#!/bin/sh
# Write the secrets docker/compose.yaml requires into an env file (default: docker/.env, which
# compose reads next to the compose file), each one fresh from /dev/urandom, mode 0600.
#
#   docker/gen-env.sh [FILE]
#
# Refuses to overwrite an existing file: the database passwords are set once, when the postgres
# volume is first initialised, and new ones would lock every party out of its database (see
# docs/operations.md, "Database roles", to change one). Values are hex, so they are safe inside
# database URLs. Keep the file out of version control (docker/.gitignore) and back it up with the
# key files: the admin token and the database passwords are needed to restore.
set -eu

env_file="${1:-$(dirname "$0")/.env}"
if [ -e "$env_file" ]; then
    echo "gen-env: $env_file exists; not overwriting it (remove it first to start afresh)" >&2
    exit 1
fi

# $1 random bytes as lowercase hex.
random_hex() {
    od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

umask 077
tmp="$env_file.tmp.$$"
trap 'rm -f "$tmp"' EXIT
{
    echo "# ecash-tpm compose secrets, written by docker/gen-env.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)."
    echo "# The central bank's admin token (certifies party keys): 256 random bits."
    echo "ECASH_TPM_ADMIN_TOKEN=$(random_hex 32)"
    echo "# Bank <-> issuer service token for the member list."
    echo "ECASH_TPM_MEMBERS_TOKEN=$(random_hex 24)"
    echo "# PostgreSQL: the superuser (used by no party), one role per party, the audit role."
    echo "ECASH_TPM_DB_SUPERUSER_PASSWORD=$(random_hex 24)"
    for party in CENTRALBANK SUPERVISION ISSUER BANK MERCHANT_A MERCHANT_B TTP AUDIT; do
        echo "ECASH_TPM_DB_PASSWORD_$party=$(random_hex 24)"
    done
} >"$tmp"
mv "$tmp" "$env_file"
trap - EXIT
echo "gen-env: wrote $env_file" >&2
