"""What a job submission carries, checked before anything is queued.

:func:`read_multipart` streams a ``multipart/form-data`` body (fields ``type``, ``file``,
``options``, ``webhook_url``) straight to a file under the storage directory, stopping with 413 as
soon as the file passes the limit (a 2 GB upload is refused after the limit, not read whole).
:func:`inspect_file` then checks the bytes: the kind is sniffed from magic bytes (PNG, JPEG, TIFF,
PDF; UTF-8 text for text pipelines), a declared kind that disagrees is refused (415), the file is
decoded whole (a truncated image or PDF is 400) and its pages are counted against the limit (413).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

from gateway.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"%PDF-", "application/pdf"),
)
KNOWN_OTHERS: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7z archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "an executable"),
    (b"MZ", "an executable"),
)
EXTENSIONS = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".pdf": "application/pdf",
    ".txt": "text/plain",
}
TEXT = "text/plain"


def sniff(head: bytes) -> str | None:
    for magic, kind in MAGIC:
        if head.startswith(magic):
            return kind
    return None


def declared_kind(file_name: str | None, content_type: str | None) -> str | None:
    """The kind the client says it sends (content type first, then the file name's extension)."""
    if content_type:
        base = content_type.split(";")[0].strip().lower()
        if base in ("image/jpg", "image/pjpeg"):
            return "image/jpeg"
        if base not in ("", "application/octet-stream"):
            return base
    if file_name:
        return EXTENSIONS.get(Path(file_name).suffix.lower())
    return None


def check_kind(head: bytes, *, declared: str | None, accepts_text: bool) -> str:
    """The sniffed kind of an upload, or 415/400 with what was found."""
    kind = sniff(head)
    if kind is None:
        other = next((name for magic, name in KNOWN_OTHERS if head.startswith(magic)), None)
        if other is None and _is_text(head):
            if not accepts_text:
                raise UnsupportedMediaType(
                    "The uploaded file is text; this job type takes PNG, JPEG, TIFF or PDF",
                    param="file",
                    code="unsupported_media_type",
                )
            kind = TEXT
        else:
            found = other or "an unrecognised format"
            claimed = f" declared as {declared}" if declared else ""
            raise UnsupportedMediaType(
                f"The uploaded file{claimed} is {found}; accepted: PNG, JPEG, TIFF, PDF"
                + (" or UTF-8 text" if accepts_text else ""),
                param="file",
                code="content_mismatch" if declared else "unsupported_media_type",
            )
    if declared is not None and declared != kind:
        raise UnsupportedMediaType(
            f"The uploaded file is declared as {declared} but its content is {kind}",
            param="file",
            code="content_mismatch",
        )
    return kind


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut by the sniff window is fine
        return exc.start >= len(head) - 3
    return True


@dataclass(slots=True)
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    """Each form field's last value."""
    repeated: dict[str, list[str]] = field(default_factory=dict)
    """Every value of each form field, in order (``timestamp_granularities[]`` comes repeated)."""
    path: Path | None = None
    file_name: str | None = None
    content_type: str | None = None
    size: int = 0


def new_upload_path(storage: Path) -> Path:
    storage.mkdir(parents=True, exist_ok=True)
    return storage / f"{uuid.uuid4().hex}.upload"


async def read_multipart(
    chunks: AsyncIterator[bytes],
    *,
    content_type: str,
    storage: Path,
    max_bytes: int,
    max_field_bytes: int = 65536,
) -> Upload:
    """Parse a multipart body, writing the ``file`` part to ``storage``; the caller deletes the
    file when it refuses the upload."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidRequest("multipart/form-data without a boundary", code="invalid_multipart")
    upload = Upload()
    state: dict[str, object] = {"headers": {}, "name": None, "value": bytearray(), "file": None}
    header_field = bytearray()
    header_value = bytearray()
    problem: list[Exception] = []

    def on_part_begin() -> None:
        state.update(headers={}, name=None, value=bytearray(), file=None)

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers = state["headers"]
        assert isinstance(headers, dict)
        headers[bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        headers = state["headers"]
        assert isinstance(headers, dict)
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        state["name"] = name
        if name == "file" and upload.path is None:
            upload.path = new_upload_path(storage)
            filename = disposition.get(b"filename")
            upload.file_name = filename.decode("utf-8", "replace")[:255] if filename else None
            ctype = headers.get(b"content-type")
            upload.content_type = ctype.decode("latin-1")[:64] if ctype else None
            state["file"] = open(upload.path, "wb")  # noqa: SIM115 - closed at the part's end

    def on_part_data(data: bytes, start: int, end: int) -> None:
        handle = state["file"]
        if handle is not None:
            upload.size += end - start
            if upload.size > max_bytes:
                if not problem:
                    problem.append(PayloadTooLarge(f"The file exceeds {max_bytes} bytes", param="file"))
                return
            handle.write(data[start:end])  # type: ignore[attr-defined]
            return
        value = state["value"]
        assert isinstance(value, bytearray)
        value.extend(data[start:end])
        if len(value) > max_field_bytes and not problem:
            problem.append(
                InvalidRequest(f"Form field {state['name']!r} is too long", param=str(state["name"]))
            )

    def on_part_end() -> None:
        handle = state["file"]
        if handle is not None:
            handle.close()  # type: ignore[attr-defined]
            state["file"] = None
            return
        name = state["name"]
        value = state["value"]
        if isinstance(name, str) and name and isinstance(value, bytearray):
            try:
                upload.fields[name] = value.decode("utf-8")
                upload.repeated.setdefault(name, []).append(upload.fields[name])
            except UnicodeDecodeError:
                problem.append(InvalidRequest(f"Form field {name!r} is not UTF-8", param=name))

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in chunks:
            parser.write(chunk)
            if problem:
                raise problem[0]
        parser.finalize()
    except (InvalidRequest, PayloadTooLarge):
        raise
    except Exception as exc:  # python-multipart's parse errors
        raise InvalidRequest(f"Malformed multipart body: {exc}", code="invalid_multipart") from exc
    finally:
        handle = state["file"]
        if handle is not None:
            handle.close()  # type: ignore[attr-defined]
        if problem and upload.path is not None:
            discard(upload.path)
    return upload


def discard(path: Path | None) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
