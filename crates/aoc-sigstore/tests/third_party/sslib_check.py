"""Independent checks of our formats with Python libraries (run from the setup.sh venv).

  dsse BUNDLE PUBLIC_KEY_PEM         verify the bundle's DSSE envelope with securesystemslib;
                                     prints the payload's sha256
  decrypt-key KEY PASSWORD           decrypt a cosign private key with hashlib.scrypt + PyNaCl;
                                     prints the public key's SPKI PEM
  encrypt-key OUT PASSWORD N         write a fresh P-256 cosign key with scrypt cost N;
                                     prints its SPKI PEM
Exit 0 on success, 1 when a check fails.
"""

import base64
import hashlib
import json
import sys

import nacl.secret
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey


def spki_pem(public_key) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def pem_body(text: str) -> bytes:
    lines = [l for l in text.splitlines() if l and not l.startswith("-----")]
    return base64.b64decode("".join(lines))


def scrypt_key(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * n * r, dklen=32)


def dsse(bundle_path: str, key_path: str) -> None:
    bundle = json.load(open(bundle_path))
    public_key = serialization.load_pem_public_key(open(key_path, "rb").read())
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    keyid = base64.b64encode(hashlib.sha256(der).digest()).decode()
    key = SSlibKey.from_crypto(public_key, keyid=keyid, scheme="ecdsa-sha2-nistp256")
    envelope = Envelope.from_dict(bundle["dsseEnvelope"])
    envelope.verify([key], 1)  # raises VerificationError
    print(hashlib.sha256(envelope.payload).hexdigest())


def decrypt_key(key_path: str, password: str) -> None:
    doc = json.loads(pem_body(open(key_path).read()))
    params = doc["kdf"]["params"]
    key = scrypt_key(
        password.encode(), base64.b64decode(doc["kdf"]["salt"]), params["N"], params["r"], params["p"]
    )
    # nacl secretbox: ciphertext is tag || box, exactly Go's secretbox.Seal output.
    plaintext = nacl.secret.SecretBox(key).decrypt(
        base64.b64decode(doc["ciphertext"]), base64.b64decode(doc["cipher"]["nonce"])
    )
    private_key = serialization.load_der_private_key(plaintext, password=None)
    print(spki_pem(private_key.public_key()), end="")


def encrypt_key(out_path: str, password: str, n: str) -> None:
    import os

    private_key = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt, nonce = os.urandom(32), os.urandom(24)
    key = scrypt_key(password.encode(), salt, int(n), 8, 1)
    box = nacl.secret.SecretBox(key).encrypt(pkcs8, nonce).ciphertext
    doc = {
        "kdf": {"name": "scrypt", "params": {"N": int(n), "r": 8, "p": 1},
                "salt": base64.b64encode(salt).decode()},
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(box).decode(),
    }
    body = base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    with open(out_path, "w") as f:
        f.write(f"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{lines}\n"
                "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    print(spki_pem(private_key.public_key()), end="")


if __name__ == "__main__":
    commands = {"dsse": dsse, "decrypt-key": decrypt_key, "encrypt-key": encrypt_key}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        commands[sys.argv[1]](*sys.argv[2:])
    except Exception as e:  # one line for the Rust test's failure message
        print(f"{sys.argv[1]} failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
