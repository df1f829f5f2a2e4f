"""Commitlog encryption (format doc §4, §5.3): keystore keys and the per-block cipher.

Cassandra's `transparent_data_encryption_options` names a keystore (JCEKS by default; PKCS12 also
works) and the segment header names the key alias, the cipher and the IV. Every encrypted block is
one `Cipher.doFinal` with the same key and IV: the Java cipher is re-initialised by each `doFinal`,
so each block is decrypted on its own (§5.3).

Errors never include a password: only the keystore path and the alias.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.serialization import pkcs12

from ray_cdc.errors import KeystoreError

AES_CBC_PKCS5 = "AES/CBC/PKCS5Padding"
_AES_BLOCK = 16

_JKS_MAGIC = b"\xfe\xed\xfe\xed"
_JCEKS_MAGIC = b"\xce\xce\xce\xce"


class CipherError(Exception):
    """A block does not decrypt (wrong length or padding); the reader adds file and position.
    `length_mismatch` as in `codecs.CodecError`."""

    def __init__(self, message: str, *, length_mismatch: bool = False):
        super().__init__(message)
        self.length_mismatch = length_mismatch


class UnsupportedCipherError(LookupError):
    """The header names a cipher this reader does not implement."""


# --- the block cipher -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AesCbcPkcs5:
    """`AES/CBC/PKCS5Padding` with one key and IV, re-initialised for every block (§5.3)."""

    key: bytes
    iv: bytes

    def __post_init__(self) -> None:
        if len(self.key) not in (16, 24, 32):
            raise ValueError(f"an AES key has 16, 24 or 32 bytes, not {len(self.key)}")
        if len(self.iv) != _AES_BLOCK:
            raise ValueError(f"AES/CBC needs a 16-byte IV, not {len(self.iv)} bytes")

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.iv))

    def encrypt(self, plain: bytes) -> bytes:
        pad = _AES_BLOCK - len(plain) % _AES_BLOCK
        enc = self._cipher().encryptor()
        return enc.update(bytes(plain) + bytes((pad,)) * pad) + enc.finalize()

    def decrypt(self, data: bytes) -> bytes:
        if not data or len(data) % _AES_BLOCK:
            raise CipherError(f"ciphertext length {len(data)} is not a positive multiple of 16")
        dec = self._cipher().decryptor()
        plain = dec.update(data) + dec.finalize()
        pad = plain[-1]
        # PKCS#5 padding: 1..16 bytes all equal to the pad length; anything else is a wrong key
        # or damaged data
        if not 1 <= pad <= _AES_BLOCK or plain[-pad:] != bytes((pad,)) * pad:
            raise CipherError("bad PKCS#5 padding (wrong key or damaged block)")
        return plain[:-pad]


#: `encCipher` header value -> cipher factory (key, iv)
CIPHERS = {AES_CBC_PKCS5: AesCbcPkcs5}
#: `encCipher` header value -> IV length in bytes
IV_SIZES = {AES_CBC_PKCS5: _AES_BLOCK}


def cipher_for(name: str, key: bytes, iv: bytes) -> AesCbcPkcs5:
    """Raises UnsupportedCipherError for unknown names, ValueError for a bad key/IV length."""
    factory = CIPHERS.get(name)
    if factory is None:
        raise UnsupportedCipherError(f"unsupported commitlog cipher {name!r} (supported: {sorted(CIPHERS)})")
    return factory(key, iv)


@dataclass(frozen=True, slots=True)
class EncryptionSpec:
    """What a writer needs to encrypt a segment: header params plus the key itself."""

    key: bytes
    key_alias: str
    iv: bytes = field(default_factory=lambda: os.urandom(_AES_BLOCK))
    cipher: str = AES_CBC_PKCS5

    def header_params(self) -> dict[str, str]:
        return {"encCipher": self.cipher, "encIV": self.iv.hex(), "encKeyAlias": self.key_alias}

    def block_cipher(self) -> AesCbcPkcs5:
        return cipher_for(self.cipher, self.key, self.iv)


# --- keystores ---------------------------------------------------------------------------------------


class Keystore:
    """Secret keys by alias from a JCEKS (pyjks) or PKCS12 keystore.

    Java lower-cases aliases in JKS/JCEKS, so lookups are case-insensitive.
    """

    def __init__(self, path: Path, keys: dict[str, bytes]):
        self.path = path
        self._keys = {alias.lower(): key for alias, key in keys.items()}

    @classmethod
    def open(cls, path, password: str, key_password: str | None = None) -> Keystore:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise KeystoreError(f"cannot read keystore {path}: {e.strerror}") from None
        loader = _JKS_LOADERS.get(data[:4], _load_pkcs12)
        return cls(path, loader(path, data, password, key_password or password))

    @classmethod
    def from_keys(cls, keys: dict[str, bytes], path: str = "<memory>") -> Keystore:
        return cls(Path(path), keys)

    @property
    def aliases(self) -> list[str]:
        return sorted(self._keys)

    def key(self, alias: str) -> bytes:
        try:
            return self._keys[alias.lower()]
        except KeyError:
            raise KeystoreError(f"keystore {self.path} has no secret key with alias {alias!r}") from None


def _load_jceks(path: Path, data: bytes, password: str, key_password: str) -> dict[str, bytes]:
    import jks  # pyjks: imported here, only encrypted segments need it

    try:
        store = jks.KeyStore.loads(data, password, try_decrypt_keys=False)
    except jks.util.KeystoreSignatureException:
        raise KeystoreError(f"keystore {path}: wrong store password or damaged file") from None
    except (jks.util.KeystoreException, ValueError, IndexError) as e:
        raise KeystoreError(f"keystore {path} is not a readable JKS/JCEKS file: {type(e).__name__}") from None
    keys = {}
    for alias, entry in store.secret_keys.items():
        try:
            if not entry.is_decrypted():
                entry.decrypt(key_password)
        except jks.util.KeystoreException:
            raise KeystoreError(f"keystore {path}: wrong key password for alias {alias!r}") from None
        keys[alias] = bytes(entry.key)
    return keys


_JKS_LOADERS = {_JKS_MAGIC: _load_jceks, _JCEKS_MAGIC: _load_jceks}


# PKCS12: `cryptography` checks the MAC (password) but skips secret-key bags, which are what Java
# keeps AES keys in (`keytool -genseckey -storetype PKCS12`), so those bags are read with pyasn1.


def _load_pkcs12(path: Path, data: bytes, password: str, key_password: str) -> dict[str, bytes]:
    try:
        pkcs12.load_pkcs12(data, password.encode())
    except ValueError:
        raise KeystoreError(
            f"keystore {path}: not a JCEKS/PKCS12 keystore, wrong password, or damaged file"
        ) from None
    try:
        bags = _pkcs12_secret_bags(data)
    except Exception as e:  # noqa: BLE001 - pyasn1 raises many unrelated types on malformed DER
        raise KeystoreError(f"keystore {path}: malformed PKCS12 structure ({type(e).__name__})") from None
    keys = {}
    for alias, shrouded in bags.items():
        try:
            keys[alias] = _decrypt_shrouded_key(shrouded, key_password)
        except (ValueError, CipherError, UnsupportedCipherError) as e:
            raise KeystoreError(f"keystore {path}: cannot decrypt key {alias!r}: {e}") from None
    return keys


def _pkcs12_secret_bags(data: bytes) -> dict[str, bytes]:
    """alias -> DER EncryptedPrivateKeyInfo of each secret-key bag in the unencrypted safes."""
    from pyasn1.codec.der import decoder
    from pyasn1.type import char
    from pyasn1_modules import rfc5652, rfc7292

    pfx, _ = decoder.decode(data, asn1Spec=rfc7292.PFX())
    safes, _ = decoder.decode(_octets(pfx["authSafe"]["content"]), asn1Spec=rfc7292.AuthenticatedSafe())
    out = {}
    for info in safes:
        if info["contentType"] != rfc5652.id_data:
            continue  # encrypted safes hold certificates in Java keystores, never secret keys
        contents, _ = decoder.decode(_octets(info["content"]), asn1Spec=rfc7292.SafeContents())
        for bag in contents:
            if bag["bagId"] != rfc7292.id_secretBag:
                continue
            secret, _ = decoder.decode(bag["bagValue"], asn1Spec=rfc7292.SecretBag())
            alias = ""
            for attr in bag["bagAttributes"]:
                if attr["attrType"] == rfc7292.pkcs_9_at_friendlyName:
                    name, _ = decoder.decode(attr["attrValues"][0], asn1Spec=char.BMPString())
                    alias = str(name)
            out[alias] = _octets(secret["secretValue"])
    return out


def _octets(any_value) -> bytes:
    from pyasn1.codec.der import decoder
    from pyasn1.type import univ

    value, _ = decoder.decode(bytes(any_value), asn1Spec=univ.OctetString())
    return bytes(value)


def _decrypt_shrouded_key(der: bytes, password: str) -> bytes:
    from pyasn1.codec.der import decoder
    from pyasn1_modules import rfc5208

    info, _ = decoder.decode(der, asn1Spec=rfc5208.EncryptedPrivateKeyInfo())
    algo = info["encryptionAlgorithm"]
    decrypt = _PBE_SCHEMES.get(str(algo["algorithm"]))
    if decrypt is None:
        raise UnsupportedCipherError(f"unsupported PKCS12 key encryption {algo['algorithm']}")
    plain = decrypt(bytes(algo["parameters"]), bytes(info["encryptedData"]), password)
    key_info, _ = decoder.decode(plain, asn1Spec=rfc5208.PrivateKeyInfo())
    return bytes(key_info["privateKey"])


_PRFS = {
    "1.2.840.113549.2.7": hashes.SHA1,
    "1.2.840.113549.2.8": hashes.SHA224,
    "1.2.840.113549.2.9": hashes.SHA256,
    "1.2.840.113549.2.10": hashes.SHA384,
    "1.2.840.113549.2.11": hashes.SHA512,
}
_AES_CBC_OIDS = {"2.16.840.1.101.3.4.1.2": 16, "2.16.840.1.101.3.4.1.22": 24, "2.16.840.1.101.3.4.1.42": 32}


def _pbes2_decrypt(params_der: bytes, data: bytes, password: str) -> bytes:
    """PBES2 = PBKDF2 + AES-CBC (what JDK 11+ keytool writes); the password is fed as UTF-8."""
    from pyasn1.codec.der import decoder
    from pyasn1.type import univ
    from pyasn1_modules import rfc8018

    params, _ = decoder.decode(params_der, asn1Spec=rfc8018.PBES2_params())
    kdf, _ = decoder.decode(bytes(params["keyDerivationFunc"]["parameters"]), asn1Spec=rfc8018.PBKDF2_params())
    scheme = params["encryptionScheme"]
    key_len = _AES_CBC_OIDS.get(str(scheme["algorithm"]))
    if key_len is None:
        raise UnsupportedCipherError(f"unsupported PBES2 cipher {scheme['algorithm']}")
    prf = _PRFS.get(str(kdf["prf"]["algorithm"]) if kdf["prf"].isValue else "1.2.840.113549.2.7")
    if prf is None:
        raise UnsupportedCipherError(f"unsupported PBKDF2 PRF {kdf['prf']['algorithm']}")
    iv, _ = decoder.decode(bytes(scheme["parameters"]), asn1Spec=univ.OctetString())
    key = PBKDF2HMAC(
        algorithm=prf(),
        length=key_len,
        salt=bytes(kdf["salt"]["specified"]),
        iterations=int(kdf["iterationCount"]),
    ).derive(password.encode("utf-8"))
    return AesCbcPkcs5(key, bytes(iv)).decrypt(data)


def _pbe_sha1_3des_decrypt(params_der: bytes, data: bytes, password: str) -> bytes:
    """pbeWithSHAAnd3-KeyTripleDES-CBC, what JDK 8 keytool writes."""
    from jks import rfc7292 as jks_rfc7292
    from pyasn1.codec.der import decoder

    params, _ = decoder.decode(params_der, asn1Spec=jks_rfc7292.Pkcs12PBEParams())
    return jks_rfc7292.decrypt_PBEWithSHAAnd3KeyTripleDESCBC(
        data, password, bytes(params["salt"]), int(params["iterations"])
    )


_PBE_SCHEMES = {
    "1.2.840.113549.1.5.13": _pbes2_decrypt,
    "1.2.840.113549.1.12.1.3": _pbe_sha1_3des_decrypt,
}
