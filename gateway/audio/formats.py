"""Audio uploads: the format from magic bytes (WAV, MP3, FLAC, OGG, WebM, M4A), the duration
measured by decoding (libsndfile through ``soundfile`` for WAV/FLAC/OGG/MP3, ``ffprobe``/``ffmpeg``
for WebM and M4A), and a truncated or corrupt file refused as 400 before any provider is called.

:func:`decode_pcm16` gives 16 kHz mono 16-bit PCM for the local engine.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.errors import InvalidRequest, UnsupportedMediaType

KINDS = {
    "audio/wav": ".wav",
    "audio/mpeg": ".mp3",
    "audio/flac": ".flac",
    "audio/ogg": ".ogg",
    "audio/webm": ".webm",
    "audio/mp4": ".m4a",
}
EXTENSIONS = {
    ".wav": "audio/wav",
    ".wave": "audio/wav",
    ".mp3": "audio/mpeg",
    ".mpga": "audio/mpeg",
    ".mpeg": "audio/mpeg",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".webm": "audio/webm",
    ".m4a": "audio/mp4",
    ".mp4": "audio/mp4",
}
_ALIASES = {
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/mp3": "audio/mpeg",
    "audio/x-flac": "audio/flac",
    "audio/opus": "audio/ogg",
    "video/webm": "audio/webm",
    "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "video/mp4": "audio/mp4",
}
_OTHERS: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive"),
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x7fELF", "an executable"),
    (b"MZ", "an executable"),
    (b"\x1f\x8b", "a gzip archive"),
)
ACCEPTED = "WAV, MP3, FLAC, OGG, WebM or M4A"


def sniff(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "audio/webm"
    if head[4:8] == b"ftyp":
        return "audio/mp4"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    return None


def declared_kind(file_name: str | None, content_type: str | None) -> str | None:
    """What the client says it sends: an audio content type first, then the file name's extension
    (``application/octet-stream``, the SDK's default, says nothing)."""
    if content_type:
        base = content_type.split(";")[0].strip().lower()
        base = _ALIASES.get(base, base)
        if base in KINDS:
            return base
    if file_name:
        return EXTENSIONS.get(Path(file_name).suffix.lower())
    return None


def check_kind(head: bytes, *, declared: str | None) -> str:
    """The sniffed format, or 415 naming what the bytes are. A declared format that disagrees with
    the bytes is refused (a ZIP named ``.wav``); among audio formats the bytes win (clients often
    label a WebM recording ``.ogg``), except that the mismatch is refused when the bytes are not audio."""
    kind = sniff(head)
    if kind is None:
        found = next((name for magic, name in _OTHERS if head.startswith(magic)), "an unrecognised format")
        claimed = f" declared as {declared}" if declared else ""
        raise UnsupportedMediaType(
            f"The uploaded file{claimed} is {found}; accepted: {ACCEPTED}",
            param="file",
            code="content_mismatch" if declared else "unsupported_media_type",
        )
    return kind


@dataclass(frozen=True, slots=True)
class AudioInfo:
    kind: str
    duration_s: float
    sample_rate: int
    channels: int


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="file", code="invalid_audio")


def probe(path: Path, kind: str) -> AudioInfo:
    """Decode the whole file and measure it (blocking; run in a thread). 400 for a truncated or
    undecodable file, 415 for WebM/M4A when no ffmpeg is installed."""
    if kind == "audio/wav":
        _check_riff(path)
    if kind in ("audio/webm", "audio/mp4"):
        return _probe_ffmpeg(path, kind)
    import soundfile as sf

    try:
        info = sf.info(str(path))
        frames = 0
        with sf.SoundFile(str(path)) as f:
            for block in f.blocks(blocksize=65536, dtype="int16"):
                frames += len(block)
    except Exception as exc:  # libsndfile's errors: truncated, corrupt, not what it claims
        raise _invalid(f"The audio file cannot be decoded ({kind}): {exc}".strip()) from exc
    if frames == 0 or info.samplerate <= 0:
        raise _invalid("The audio file has no samples")
    declared = int(info.frames) if kind == "audio/flac" else 0
    if declared and frames < declared * 0.98:
        raise _invalid(f"The audio file is truncated: {frames} of {declared} samples decode")
    return AudioInfo(kind, frames / info.samplerate, int(info.samplerate), int(info.channels))


def _check_riff(path: Path) -> None:
    """A WAV file whose ``data`` chunk promises more bytes than the file has is truncated
    (libsndfile would silently read the shorter part)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(12)
        while True:
            header = f.read(8)
            if len(header) < 8:
                raise _invalid("The WAV file has no data chunk (truncated)")
            chunk, length = header[:4], struct.unpack("<I", header[4:])[0]
            if chunk == b"data":
                if length != 0xFFFFFFFF and f.tell() + length > size:
                    raise _invalid(
                        f"The WAV file is truncated: its data chunk declares {length} bytes, "
                        f"{size - f.tell()} are present"
                    )
                return
            f.seek(length + (length & 1), 1)


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None


def _probe_ffmpeg(path: Path, kind: str) -> AudioInfo:
    if not ffmpeg_available():
        raise UnsupportedMediaType(
            f"{kind} needs ffmpeg, which this gateway does not have; send WAV, MP3, FLAC or OGG",
            param="file",
            code="unsupported_media_type",
        )
    pcm = _ffmpeg_pcm(path, kind)
    if pcm.size == 0:
        raise _invalid("The audio file has no decodable samples")
    return AudioInfo(kind, pcm.size / 16000, 16000, 1)


def _ffmpeg_pcm(path: Path, kind: str) -> np.ndarray:
    result = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-nostdin",
            "-i",
            str(path),
            "-ac",
            "1",
            "-ar",
            "16000",
            "-f",
            "s16le",
            "-",
        ],
        capture_output=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0 or result.stderr.strip():
        detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise _invalid(
            f"The audio file cannot be decoded ({kind}): {detail[-1] if detail else 'ffmpeg failed'}"
        )
    return np.frombuffer(result.stdout, dtype=np.int16)


def decode_pcm16(path: Path, kind: str, rate: int = 16000) -> np.ndarray:
    """The file as mono int16 samples at ``rate`` (blocking)."""
    if kind in ("audio/webm", "audio/mp4"):
        return _ffmpeg_pcm(path, kind)
    import soundfile as sf

    data, source_rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = resample(data.mean(axis=1), int(source_rate), rate)
    pcm: np.ndarray = np.clip(np.rint(mono * 32768.0), -32768, 32767).astype(np.int16)
    return pcm


def resample(samples: np.ndarray, source: int, target: int, *, block_s: float = 30.0) -> np.ndarray:
    """Band-limited resampling by FFT, in blocks of ``block_s`` seconds (memory stays bounded for
    long audio; a block edge may click faintly); linear interpolation, without a low-pass filter, aliases."""
    if source == target or samples.size == 0:
        return samples.astype(np.float32)
    step = int(block_s * source)
    out = []
    for start in range(0, samples.size, step):
        block = samples[start : start + step]
        length = max(1, round(block.size * target / source))
        spectrum = np.fft.rfft(block)
        kept = np.zeros(length // 2 + 1, dtype=complex)
        n = min(spectrum.size, kept.size)
        kept[:n] = spectrum[:n]
        out.append(np.fft.irfft(kept, length) * (length / block.size))
    return np.concatenate(out).astype(np.float32)
