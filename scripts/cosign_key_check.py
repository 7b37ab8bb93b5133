#!/usr/bin/env python3
# Does the release signing key (a cosign private key in COSIGN_KEY_B64 or at COSIGN_KEY,
# decrypted with COSIGN_PASSWORD) belong to the committed public key? Standard library only, so
# the release preflight (scripts/release-preflight.sh) answers in about a second, before cargo
# has built anything.
#
#   python3 scripts/cosign_key_check.py PUBLIC.pub [DEV.pub]
#
# The secrets are read from the environment, never from argv. Cosign's key format (the one
# crates/aoc-sigstore reads): a PEM block "ENCRYPTED SIGSTORE PRIVATE KEY" (or the older
# "ENCRYPTED COSIGN PRIVATE KEY") whose body is JSON {kdf: scrypt N r p + salt, cipher:
# nacl/secretbox + nonce, ciphertext}; the plaintext is a PKCS#8 ECDSA P-256 key. The public key
# is computed from the private scalar (P-256 arithmetic below) and compared with PUBLIC.pub's
# SPKI point; DEV.pub, when given, is refused as a production key.
#
# Exit 0: the key matches (its key id is printed). Exit 1: a refusal, one line naming the cause.
# Exit 2: usage.
import base64
import hashlib
import json
import os
import struct
import sys

P256_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P256_A = P256_P - 3
P256_G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)
# SubjectPublicKeyInfo header of an uncompressed P-256 point: id-ecPublicKey, prime256v1.
SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
OID_EC_PUBLIC_KEY = bytes.fromhex("2a8648ce3d0201")
OID_P256 = bytes.fromhex("2a8648ce3d030107")
PRIVATE_LABELS = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")


class Refused(Exception):
    pass


def pem_block(text, what):
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


# --- XSalsa20-Poly1305 (NaCl secretbox), decryption only ---------------------------------------


def _rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def _salsa_rounds(x):
    for _ in range(10):
        for a, b, c, d in ((0, 4, 8, 12), (5, 9, 13, 1), (10, 14, 2, 6), (15, 3, 7, 11),
                           (0, 1, 2, 3), (5, 6, 7, 4), (10, 11, 8, 9), (15, 12, 13, 14)):
            x[b] ^= _rotl((x[a] + x[d]) & 0xFFFFFFFF, 7)
            x[c] ^= _rotl((x[b] + x[a]) & 0xFFFFFFFF, 9)
            x[d] ^= _rotl((x[c] + x[b]) & 0xFFFFFFFF, 13)
            x[a] ^= _rotl((x[d] + x[c]) & 0xFFFFFFFF, 18)
    return x


SIGMA = struct.unpack("<4I", b"expand 32-byte k")


def _state(key, sixteen):
    k = struct.unpack("<8I", key)
    n = struct.unpack("<4I", sixteen)
    return [SIGMA[0], *k[:4], SIGMA[1], *n, SIGMA[2], *k[4:], SIGMA[3]]


def hsalsa20(key, nonce16):
    x = _salsa_rounds(_state(key, nonce16))
    return struct.pack("<8I", *(x[i] for i in (0, 5, 10, 15, 6, 7, 8, 9)))


def salsa20_stream(key, nonce8, length):
    out = bytearray()
    counter = 0
    while len(out) < length:
        start = _state(key, nonce8 + struct.pack("<Q", counter))
        x = _salsa_rounds(list(start))
        out += struct.pack("<16I", *((a + b) & 0xFFFFFFFF for a, b in zip(x, start)))
        counter += 1
    return bytes(out[:length])


def poly1305(key, msg):
    r = int.from_bytes(key[:16], "little") & 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
    s = int.from_bytes(key[16:], "little")
    p = (1 << 130) - 5
    acc = 0
    for i in range(0, len(msg), 16):
        block = msg[i : i + 16] + b"\x01"
        acc = (acc + int.from_bytes(block, "little")) * r % p
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, "little")


def secretbox_open(box, nonce, key):
    if len(box) < 16 or len(nonce) != 24 or len(key) != 32:
        raise Refused("the encrypted key is malformed (secretbox sizes)")
    stream = salsa20_stream(hsalsa20(key, nonce[:16]), nonce[16:], 32 + len(box) - 16)
    tag, ciphertext = box[:16], box[16:]
    if poly1305(stream[:32], ciphertext) != tag:
        return None
    return bytes(c ^ s for c, s in zip(ciphertext, stream[32:]))


# --- DER and P-256 ---------------------------------------------------------------------------


def der_items(data):
    """The (tag, content) items of a DER sequence's content."""
    items, i = [], 0
    while i < len(data):
        tag, length = data[i], data[i + 1]
        i += 2
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(data[i : i + n], "big")
            i += n
        items.append((tag, data[i : i + length]))
        i += length
    return items


def private_scalar(pkcs8):
    """The P-256 private scalar of a PKCS#8 PrivateKeyInfo."""
    try:
        [(tag, info)] = der_items(pkcs8)
        version, algorithm, private = der_items(info)[:3]
        oids = [v for t, v in der_items(algorithm[1]) if t == 0x06]
        if oids != [OID_EC_PUBLIC_KEY, OID_P256]:
            raise Refused("the signing key is not an ECDSA P-256 key")
        ec = der_items(der_items(private[1])[0][1])
        d = int.from_bytes(ec[1][1], "big")
    except (ValueError, IndexError):
        raise Refused("the decrypted signing key is not PKCS#8")
    if not 0 < d < P256_N:
        raise Refused("the signing key's private scalar is out of range")
    return d


def point_mul(k, point):
    def add(p, q):
        if p is None:
            return q
        if q is None:
            return p
        if p[0] == q[0] and (p[1] + q[1]) % P256_P == 0:
            return None
        if p == q:
            m = (3 * p[0] * p[0] + P256_A) * pow(2 * p[1], -1, P256_P)
        else:
            m = (q[1] - p[1]) * pow(q[0] - p[0], -1, P256_P)
        x = (m * m - p[0] - q[0]) % P256_P
        return x, (m * (p[0] - x) - p[1]) % P256_P

    result = None
    for bit in bin(k)[2:]:
        result = add(result, result)
        if bit == "1":
            result = add(result, point)
    return result


def key_id(spki):
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def public_spki(path):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(64 << 10)
    except OSError as e:
        raise Refused(f"the production public key {path} is missing or unreadable ({e.strerror})")
    except UnicodeDecodeError:
        raise Refused(f"the production public key {path} is not text")
    label, der = pem_block(text, path)
    if label != "PUBLIC KEY" or not der.startswith(SPKI_PREFIX) or len(der) != len(SPKI_PREFIX) + 65:
        raise Refused(f"{path} is not an ECDSA P-256 public key (PEM \"PUBLIC KEY\")")
    return der


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
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read(64 << 10)
        except (OSError, UnicodeDecodeError) as e:
            raise Refused(f"COSIGN_KEY={path} is unreadable ({e})")
        source = f"COSIGN_KEY={path}"
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
    if 128 * n * r > 1 << 30:
        raise Refused(f"{source}: scrypt parameters too costly (N={n}, r={r})")
    password = env.get("COSIGN_PASSWORD", "").encode()
    secret = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * n * r + (1 << 20), dklen=32)
    pkcs8 = secretbox_open(box, nonce, secret)
    if pkcs8 is None:
        raise Refused(
            f"COSIGN_PASSWORD does not decrypt {source}: the password secret is missing or wrong"
        )
    x, y = point_mul(private_scalar(pkcs8), P256_G)
    return source, SPKI_PREFIX + b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


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
