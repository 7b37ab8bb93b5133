#!/usr/bin/env python3
# Does the release signing key (a cosign private key in COSIGN_KEY_B64 or at COSIGN_KEY,
# decrypted with COSIGN_PASSWORD) belong to the committed public key? Answers in about a second,
# before cargo has built anything (scripts/release-preflight.sh runs it).
#
#   python3 scripts/cosign_key_check.py PUBLIC.pub [DEV.pub]
#
# No cryptography is implemented here: scrypt is the standard library's (OpenSSL), the cipher is
# PyNaCl's secretbox, the keys are parsed and the public point derived by `cryptography`; both
# libraries are pinned by hash in scripts/cosign_key_check.requirements.txt, which the preflight
# installs into target/third-party/keycheck. The secrets are read from the environment, never
# from argv. Cosign's key format (the one crates/aoc-sigstore reads): a PEM block "ENCRYPTED
# SIGSTORE PRIVATE KEY" (or the older "ENCRYPTED COSIGN PRIVATE KEY") whose body is JSON {kdf:
# scrypt N r p + salt, cipher: nacl/secretbox + nonce, ciphertext}; the plaintext is a PKCS#8
# ECDSA P-256 key. Its public key is compared with PUBLIC.pub's; DEV.pub, when given, is refused
# as a production key.
#
# Exit 0: the key matches (its key id is printed). Exit 1: a refusal, one line naming the cause.
# Exit 2: usage. Exit 3: the libraries are not installed (the preflight then says so).
import base64
import hashlib
import json
import os
import sys

try:
    import nacl.exceptions
    import nacl.secret
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
except ImportError as e:
    print(
        f"cosign_key_check: {e.name} is not installed: pip install --require-hashes "
        "-r scripts/cosign_key_check.requirements.txt (scripts/release-preflight.sh does)",
        file=sys.stderr,
    )
    sys.exit(3)

PRIVATE_LABELS = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
# Key files are a few hundred bytes; anything near this is not one.
MAX_KEY_FILE = 64 << 10


class Refused(Exception):
    pass


def pem_block(text, what):
    """The label and DER body of the first PEM block (cosign's private key label is not one that
    `cryptography` loads, so the armour is taken off here; its content is parsed by the
    libraries)."""
    start = text.find("-----BEGIN ")
    if start < 0:
        raise Refused(f"{what} holds no PEM block")
    rest = text[start + len("-----BEGIN ") :]
    label, sep, body = rest.partition("-----")
    end = body.find(f"-----END {label}-----")
    if not sep or end < 0:
        raise Refused(f"{what}: unterminated PEM block {label!r}")
    try:
        der = base64.b64decode("".join(body[:end].split()), validate=True)
    except ValueError:
        raise Refused(f"{what}: the PEM body is not base64")
    return label, der


def spki_der(key):
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def is_p256(key):
    return isinstance(key.curve, ec.SECP256R1)


def key_id(spki):
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def read_text(path, what):
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KEY_FILE + 1)
    except OSError as e:
        raise Refused(f"{what} is missing or unreadable ({e.strerror})")
    if len(data) > MAX_KEY_FILE:
        raise Refused(f"{what} is larger than a key file ({MAX_KEY_FILE} bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(f"{what} is not text")


def public_spki(path):
    text = read_text(path, f"the production public key {path}")
    label, der = pem_block(text, path)
    try:
        key = serialization.load_der_public_key(der) if label == "PUBLIC KEY" else None
    except ValueError:
        key = None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not is_p256(key):
        raise Refused(f"{path} is not an ECDSA P-256 public key (PEM \"PUBLIC KEY\")")
    return spki_der(key)


def signing_spki(env):
    b64, path = env.get("COSIGN_KEY_B64", ""), env.get("COSIGN_KEY", "")
    if b64 and path:
        raise Refused("both COSIGN_KEY and COSIGN_KEY_B64 are set: unset one of them")
    if b64:
        try:
            text = base64.b64decode("".join(b64.split()), validate=True).decode("utf-8")
        except ValueError:
            raise Refused("COSIGN_KEY_B64 is not base64 of a PEM key (encode it with base64 -w0)")
        source = "COSIGN_KEY_B64"
    elif path:
        source = f"COSIGN_KEY={path}"
        text = read_text(path, source)
    else:
        raise Refused("the signing key secret is missing: COSIGN_KEY_B64 (or COSIGN_KEY) is empty")
    label, body = pem_block(text, source)
    if label not in PRIVATE_LABELS:
        raise Refused(f"{source} is not a cosign private key (PEM label {label!r})")
    try:
        envelope = json.loads(body)
        kdf, cipher = envelope["kdf"], envelope["cipher"]
        if kdf["name"] != "scrypt" or cipher["name"] != "nacl/secretbox":
            raise Refused(f"{source}: unsupported KDF or cipher ({kdf['name']}, {cipher['name']})")
        params = kdf["params"]
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
        salt = base64.b64decode(kdf["salt"])
        nonce = base64.b64decode(cipher["nonce"])
        box = base64.b64decode(envelope["ciphertext"])
    except (ValueError, KeyError, TypeError):
        raise Refused(f"{source} is not cosign's encrypted key JSON")
    # A key file from the secret store is trusted for its content, not for its cost.
    if not (1 < n <= 1 << 20 and 0 < r <= 32 and 0 < p <= 16) or 128 * n * r > 1 << 30:
        raise Refused(f"{source}: scrypt parameters out of range (N={n}, r={r}, p={p})")
    if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise Refused(f"{source}: the secretbox nonce is not {nacl.secret.SecretBox.NONCE_SIZE} bytes")
    password = env.get("COSIGN_PASSWORD", "").encode()
    secret = hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * n * r + (1 << 20), dklen=32
    )
    try:
        pkcs8 = nacl.secret.SecretBox(secret).decrypt(box, nonce)
    except nacl.exceptions.CryptoError:
        raise Refused(
            f"COSIGN_PASSWORD does not decrypt {source}: the password secret is missing or wrong"
        )
    try:
        private = serialization.load_der_private_key(pkcs8, password=None)
    except (ValueError, TypeError):
        raise Refused("the decrypted signing key is not PKCS#8")
    if not isinstance(private, ec.EllipticCurvePrivateKey) or not is_p256(private):
        raise Refused("the signing key is not an ECDSA P-256 key")
    return source, spki_der(private.public_key())


def main(argv):
    if len(argv) not in (2, 3):
        print("usage: cosign_key_check.py PUBLIC.pub [DEV.pub]", file=sys.stderr)
        return 2
    try:
        public = public_spki(argv[1])
        if len(argv) == 3 and public == public_spki(argv[2]):
            raise Refused(f"{argv[1]} is the public dev key: commit the production public key there")
        source, signing = signing_spki(os.environ)
        if signing != public:
            raise Refused(
                f"the signing key in {source} (key id {key_id(signing)}) does not match the "
                f"production public key {argv[1]} (key id {key_id(public)})"
            )
    except Refused as e:
        print(f"cosign_key_check: {e}", file=sys.stderr)
        return 1
    print(key_id(public))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
