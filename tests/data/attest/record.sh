#!/usr/bin/env bash
# Record the TPM blobs that tests/test_attest_*.py verify, from a fresh swtpm driven by
# tpm2-tools. Re-run it to refresh the blobs (it overwrites the files next to it):
#
#     tests/data/attest/record.sh
#
# Needs swtpm, swtpm_setup (with swtpm_localca), tpm2-tools 5.x and the project venv (tpm2-pytss
# is used for exactly one step: tpm2-tools cannot create a BN_P256 ECDAA key). The CA lives in a
# temporary XDG_CONFIG_HOME, never in the system's; the swtpm listens on 127.0.0.1 only and is
# stopped by the pid in its pid file; the temporary directory is removed on exit.
#
# Files written (all TPM structures in the tpm2-tools "tss" format):
#   ca-root.pem, ca-intermediate.pem      swtpm_localca root and "swtpm-localca" intermediate
#   ek-rsa.nv, ek-ecc.nv                  NV contents of 0x01c00002 (RSA-2048 EK cert) and
#                                         0x01c00016 (ECC P-384 EK cert), as tpm2_nvread wrote them
#   ek-rsa.pub, ek-ecc.pub                EK TPM2B_PUBLIC (persistent 0x81010001 / 0x81010016)
#   ak-{ecc,ecc384,rsa,rsapss}.pub/.name  restricted AKs made by tpm2_createak under the RSA EK
#   unrestricted.pub                      a non-restricted ECDSA signing key (the attack case)
#   quote-<key>.msg / .sig                tpm2_quote -m (TPMS_ATTEST) / -s (TPMT_SIGNATURE) of
#                                         sha256:0,1,2,3,7,16 with the nonce in meta.json
#   daa.pub                               BN_P256 ECDAA key (DESIGN §4 DAA key template)
#   certify-daa.msg / .sig                tpm2_certify of daa.pub by ak-ecc (tpm2-tools 5.4 has
#                                         no qualifying-data option and always sends 00ff55aa)
#   ecdaa.sig                             a TPMT_SIGNATURE made by the ECDAA key (parser sample)
#   meta.json                             nonce, PCR selection and values, what each file is
set -euo pipefail

OUT=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$OUT/../../.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ecash-attest-record.XXXXXX")

cleanup() {
    if [ -s "$TMP/swtpm.pid" ]; then
        kill "$(cat "$TMP/swtpm.pid")" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

cd "$TMP"
export XDG_CONFIG_HOME=$TMP
export TSS2_LOG=all+none
swtpm_setup --create-config-files overwrite,root >/dev/null
mkdir state
swtpm_setup --tpm2 --tpmstate "$TMP/state" --config "$TMP/swtpm_setup.conf" \
    --create-ek-cert --create-platform-cert --lock-nvram --overwrite --ecc \
    --logfile "$TMP/swtpm_setup.log" >/dev/null
CA_DIR=$(sed -n 's/^statedir *= *//p' "$TMP/swtpm-localca.conf")

# A free port pair (server P, control P+1) on the loopback interface.
PORT=$(python3 - <<'EOF'
import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1))
    except OSError:
        continue
    finally:
        a.close(); b.close()
    print(p)
    break
EOF
)
swtpm socket --tpm2 --tpmstate dir="$TMP/state" \
    --server type=tcp,port="$PORT",bindaddr=127.0.0.1 \
    --ctrl type=tcp,port=$((PORT + 1)),bindaddr=127.0.0.1 \
    --flags not-need-init,startup-clear --daemon --pid file="$TMP/swtpm.pid"
export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$PORT"

# Without a resource manager every tool leaves its transient objects loaded: flush after each.
flush() { tpm2_flushcontext -t; tpm2_flushcontext -s; }

NONCE=$(printf 'ecash-tpm/attest/test-nonce' | sha256sum | cut -c1-64)
PCRS=sha256:0,1,2,3,7,16

cp "$CA_DIR/swtpm-localca-rootca-cert.pem" "$OUT/ca-root.pem"
cp "$CA_DIR/issuercert.pem" "$OUT/ca-intermediate.pem"
tpm2_nvread 0x01c00002 -C o -o "$OUT/ek-rsa.nv" 2>/dev/null
tpm2_nvread 0x01c00016 -C o -o "$OUT/ek-ecc.nv" 2>/dev/null
tpm2_readpublic -c 0x81010001 -o "$OUT/ek-rsa.pub" >/dev/null
tpm2_readpublic -c 0x81010016 -o "$OUT/ek-ecc.pub" >/dev/null
flush

# Make the quoted PCRs non-trivial.
for i in 0 1 7 16; do
    tpm2_pcrextend "$i:sha256=$(printf 'ecash-tpm pcr %s' "$i" | sha256sum | cut -c1-64)"
done

createak() { # name alg hash scheme
    tpm2_createak -C 0x81010001 -c "$1.ctx" -G "$2" -g "$3" -s "$4" \
        -u "$OUT/ak-$1.pub" -n "$OUT/ak-$1.name" >/dev/null
    flush
}
createak ecc ecc sha256 ecdsa
createak ecc384 ecc384 sha384 ecdsa
createak rsa rsa sha256 rsassa
createak rsapss rsa sha256 rsapss

tpm2_createprimary -C o -G ecc256:ecdsa-sha256 -c unrestricted.ctx \
    -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign' >/dev/null
tpm2_readpublic -c unrestricted.ctx -o "$OUT/unrestricted.pub" >/dev/null
flush

quote() { # key-ctx out-name hash [scheme]
    tpm2_quote -c "$1" -l "$PCRS" -q "$NONCE" -g "$3" ${4:+--scheme "$4"} \
        -m "$OUT/quote-$2.msg" -s "$OUT/quote-$2.sig" >/dev/null
    flush
}
quote ecc.ctx ecc sha256
quote ecc384.ctx ecc384 sha384
quote rsa.ctx rsa sha256
quote rsapss.ctx rsapss sha256 rsapss
quote unrestricted.ctx unrestricted sha256
tpm2_pcrread "$PCRS" -o pcrs.bin >/dev/null

# DAA key (BN_P256, ECDAA/SHA-256, sign|fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth)
# under a persistent storage primary; the template is marshalled by hand to be explicit.
tpm2_createprimary -C o -G ecc256 -c storage.ctx >/dev/null
tpm2_evictcontrol -C o -c storage.ctx 0x81000001 >/dev/null
flush
"$PY" - "$PORT" <<'EOF'
import sys

from tpm2_pytss import ESAPI, TCTILdr
from tpm2_pytss.types import TPM2B_PUBLIC, TPM2B_SENSITIVE_CREATE

template = bytes.fromhex(
    "0023" "000b" "00040072" "0000"  # ECC, nameAlg SHA-256, attributes, empty authPolicy
    "0010"  # symmetric NULL
    "001a" "000b" "0000"  # scheme ECDAA, SHA-256, count 0
    "0010"  # curve TPM_ECC_BN_P256
    "0010"  # kdf NULL
    "0000" "0000"  # unique: empty x, y
)
public, _ = TPM2B_PUBLIC.unmarshal(len(template).to_bytes(2, "big") + template)
with ESAPI(TCTILdr("swtpm", f"host=127.0.0.1,port={sys.argv[1]}")) as esys:
    parent = esys.tr_from_tpmpublic(0x81000001)
    priv, pub, _, _, _ = esys.create(parent, TPM2B_SENSITIVE_CREATE(), public)
open("daa.priv", "wb").write(priv.marshal())
open("daa.pub", "wb").write(pub.marshal())
EOF
cp daa.pub "$OUT/daa.pub"
tpm2_load -C 0x81000001 -u daa.pub -r daa.priv -c daa.ctx >/dev/null
flush
tpm2_certify -C ecc.ctx -c daa.ctx -g sha256 -o "$OUT/certify-daa.msg" -s "$OUT/certify-daa.sig" \
    >/dev/null
flush

# One ECDAA signature, for the TPMT_SIGNATURE parser: TPM2_Commit then TPM2_Sign.
tpm2_commit -c daa.ctx -t commit.counter --eccpoint-K K.bin --eccpoint-L L.bin -u E.bin \
    >/dev/null 2>&1 || tpm2_commit -c daa.ctx -t commit.counter -u E.bin >/dev/null
flush
printf 'ecash-tpm ecdaa sample' | sha256sum | cut -c1-64 | xxd -r -p > digest.bin
tpm2_sign -c daa.ctx -g sha256 -s ecdaa --commit-index="$(od -An -tu2 --endian=big commit.counter \
    | tr -d ' ')" -d -o "$OUT/ecdaa.sig" digest.bin >/dev/null
flush

"$PY" - "$OUT" "$NONCE" pcrs.bin <<'EOF'
import json
import sys

out, nonce, pcr_file = sys.argv[1], sys.argv[2], sys.argv[3]
indices = [0, 1, 2, 3, 7, 16]
raw = open(pcr_file, "rb").read()
assert len(raw) == 32 * len(indices), len(raw)
pcrs = {str(i): raw[32 * k : 32 * k + 32].hex() for k, i in enumerate(indices)}
meta = {
    "recorded_with": "tests/data/attest/record.sh (swtpm + tpm2-tools)",
    "nonce": nonce,
    "pcr_bank": "sha256",
    "pcrs": pcrs,
    "quotes": {
        "ecc": {"ak": "ak-ecc.pub", "hash": "sha256"},
        "ecc384": {"ak": "ak-ecc384.pub", "hash": "sha384"},
        "rsa": {"ak": "ak-rsa.pub", "hash": "sha256"},
        "rsapss": {"ak": "ak-rsapss.pub", "hash": "sha256"},
        "unrestricted": {"ak": "unrestricted.pub", "hash": "sha256"},
    },
    "certify": {"ak": "ak-ecc.pub", "certified": "daa.pub", "nonce": "00ff55aa"},
}
with open(f"{out}/meta.json", "w") as fh:
    json.dump(meta, fh, indent=2, sort_keys=True)
    fh.write("\n")
EOF
echo "recorded blobs into $OUT"
