"""Deterministic embeddings: a signed, hashed bag of words, L2-normalised.

Texts sharing many words get a high cosine similarity, unrelated texts a low one;
that is all the comparison code needs from an embeddings endpoint in tests and demos.
Not a language model: synonyms are unrelated here.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct

_TOKEN = re.compile(r"\w+")


def embed(text: str, dimensions: int) -> list[float]:
    """A unit vector of ``dimensions`` floats for ``text`` (a fixed unit vector if empty)."""
    vector = [0.0] * dimensions
    for token in _TOKEN.findall(text.lower()):
        digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
        bucket = int.from_bytes(digest[:4], "big") % dimensions
        # A hash-chosen sign keeps unrelated words from piling up on the same axis.
        vector[bucket] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        vector[0] = 1.0
        return vector
    return [v / norm for v in vector]


def encode_base64(vector: list[float]) -> str:
    """Little-endian float32 bytes in base64, as OpenAI returns for ``encoding_format=base64``."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0
