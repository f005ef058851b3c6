"""``/v1/jobs`` over real HTTP on a real uvicorn gateway in its embedded default (SQLite, no broker:
the in-process worker): OCR of generated Korean and English pages scored by CER, a PDF with a text
layer, and the bad-input list — each a clear 4xx, nothing queued. Then, on Postgres with auth on,
the ``document_analysis`` and ``summarize`` jobs on generated 공문: their results, and one usage row
per model call of the pipeline, owned by the job owner's user and key."""

from __future__ import annotations

import asyncio
import io
import socket
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from PIL import Image

from scripts.gen_gongmun import generate, render_pdf
from tests.integration.db_fixtures import *  # noqa: F403
from tests.support.durable_graphs import asyncpg_dsn
from tests.support.gateway_proc import GatewayProcess, running_gateway
from tests.support.ocr_documents import cer, font_paths, page_text, png_bytes, render
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("jobs")
    env = {
        "GATEWAY_JOBS_STORAGE_DIR": str(tmp / "uploads"),
        "GATEWAY_JOBS_MAX_PAGES": "50",
        "GATEWAY_JOBS_PAGES_PER_DAY": "40",
        "GATEWAY_JOBS_MAX_UPLOAD_BYTES": str(8 * 1024 * 1024),
    }
    with running_gateway(tmp, env=env, ready_timeout=180.0) as gw:
        yield gw


def submit(
    gw: GatewayProcess,
    data: bytes,
    *,
    name: str,
    content_type: str,
    job_type: str = "ocr",
    options: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    form = {"type": job_type, **({"options": options} if options else {})}
    return httpx.post(
        f"{gw.url}/v1/jobs",
        data=form,
        files={"file": (name, data, content_type)},
        headers=headers or {},
        timeout=30,
    )


def finished(gw: GatewayProcess, job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = httpx.get(f"{gw.url}/v1/jobs/{job_id}", timeout=10).json()
        return body if body["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_until(done, f"job {job_id} finished", within_s=120)


def queued_count(gw: GatewayProcess) -> int:
    return len(httpx.get(f"{gw.url}/v1/jobs", params={"limit": 100}, timeout=10).json()["data"])


def test_ocr_of_korean_and_english_pages_over_http(gateway: GatewayProcess) -> None:
    for language, limit in (("ko", 0.12), ("en", 0.02)):
        text = page_text(language, seed=7, lines=4)
        image = render(text, font_path=font_paths(language)[1 if language == "ko" else 0], dpi=300)
        response = submit(
            gateway,
            png_bytes(image),
            name="page.png",
            content_type="image/png",
            headers={"Idempotency-Key": f"ocr-{language}"},
        )
        assert response.status_code == 202, response.text
        job = response.json()
        assert response.headers["location"] == f"/v1/jobs/{job['id']}"
        assert job["status"] in ("queued", "running") and job["pages"] == 1
        again = submit(
            gateway,
            png_bytes(image),
            name="page.png",
            content_type="image/png",
            headers={"Idempotency-Key": f"ocr-{language}"},
        )
        assert again.json()["id"] == job["id"] and again.headers["idempotent-replayed"] == "true"
        done = finished(gateway, job["id"])
        assert done["status"] == "succeeded", done
        assert done["progress"]["percent"] == 100.0
        result = httpx.get(f"{gateway.url}/v1/jobs/{job['id']}/result", timeout=10).json()["result"]
        score = cer(text, result["text"])
        assert score <= limit, (language, score, result["text"])
        block = result["pages"][0]["blocks"][0]
        assert len(block["box"]) == 4 and 0 <= block["confidence"] <= 100 and block["text"]


def text_pdf(line: str) -> bytes:
    """A one-page PDF whose text is a text layer (Helvetica), xref offsets computed."""
    stream = f"BT /F1 14 Tf 72 720 Td ({line}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_pdf_text_layer_is_read_without_ocr(gateway: GatewayProcess) -> None:
    line = "Reference GOV-2026-0417: reply by 18 December 2026"
    response = submit(gateway, text_pdf(line), name="letter.pdf", content_type="application/pdf")
    assert response.status_code == 202, response.text
    done = finished(gateway, response.json()["id"])
    assert done["status"] == "succeeded", done
    result = httpx.get(f"{gateway.url}/v1/jobs/{done['id']}/result", timeout=10).json()["result"]
    assert result["pages"][0]["source"] == "text_layer"
    assert result["text"].strip() == line


def test_a_scanned_pdf_page_is_ocred(gateway: GatewayProcess) -> None:
    import pypdfium2 as pdfium

    image = render(
        "Invoice 2026-0417 total USD 47,250.00\nPayment due 18 December 2026",
        font_path=font_paths("en")[0],
        dpi=150,
    )
    scanned = io.BytesIO()
    image.convert("RGB").save(scanned, format="PDF", resolution=150)
    pdf = pdfium.PdfDocument(scanned.getvalue())
    assert len(pdf) == 1
    response = submit(gateway, scanned.getvalue(), name="scan.pdf", content_type="application/pdf")
    assert response.status_code == 202, response.text
    done = finished(gateway, response.json()["id"])
    assert done["status"] == "succeeded", done
    result = httpx.get(f"{gateway.url}/v1/jobs/{done['id']}/result", timeout=10).json()["result"]
    assert result["pages"][0]["source"] == "ocr"  # a scan: no text layer
    assert cer("Invoice 2026-0417 total USD 47,250.00\nPayment due 18 December 2026", result["text"]) < 0.05


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", "not an image" * 100)
    return buffer.getvalue()


def _many_page_pdf(pages: int) -> bytes:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    for _ in range(pages):
        pdf.new_page(200, 200)
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def test_bad_input_is_refused_with_clear_4xx_and_nothing_is_queued(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    before = queued_count(gateway)
    png = png_bytes(Image.new("L", (400, 200), 255))
    cases: list[tuple[str, httpx.Response, int, str]] = [
        (
            "zip as png",
            submit(gateway, _zip_bytes(), name="scan.png", content_type="image/png"),
            415,
            "content_mismatch",
        ),
        (
            "truncated png",
            submit(gateway, png[: len(png) // 2], name="a.png", content_type="image/png"),
            400,
            "invalid_file",
        ),
        (
            "10,000-page pdf",
            submit(gateway, _many_page_pdf(10_000), name="big.pdf", content_type="application/pdf"),
            413,
            "too_many_pages",
        ),
        (
            "truncated pdf",
            submit(gateway, _many_page_pdf(2)[:-200], name="t.pdf", content_type="application/pdf"),
            400,
            "invalid_file",
        ),
        (
            "unknown type",
            submit(gateway, png, name="a.png", content_type="image/png", job_type="nope"),
            400,
            "invalid_job_type",
        ),
        (
            "evaluation (queued by /api/evaluations only)",
            submit(gateway, png, name="a.png", content_type="image/png", job_type="evaluation"),
            400,
            "invalid_job_type",
        ),
        (
            "bad options",
            submit(gateway, png, name="a.png", content_type="image/png", options="[1"),
            400,
            "invalid_options",
        ),
        (
            "text for ocr",
            submit(gateway, b"plain words " * 50, name="a.txt", content_type="text/plain"),
            415,
            "unsupported_media_type",
        ),
        (
            "big upload",
            submit(
                gateway,
                b"\x89PNG\r\n\x1a\n" + b"\0" * (9 * 1024 * 1024),
                name="a.png",
                content_type="image/png",
            ),
            413,
            "request_too_large",
        ),
        (
            "bad base64",
            httpx.post(f"{gateway.url}/v1/jobs", json={"type": "ocr", "content": "@@@"}, timeout=10),
            400,
            "invalid_base64",
        ),
    ]
    for what, response, status, code in cases:
        assert response.status_code == status, (what, response.text)
        error = response.json()["error"]
        assert error["code"] == code and error["message"], (what, error)
    # 2 GB declared: refused from the header alone, before the body is read
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as conn:
        conn.sendall(
            b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            + f"Content-Length: {2 * 1024**3}\r\n\r\n".encode()
            + b"--x\r\n"
        )
        answer = ""
        while "request_too_large" not in answer and (chunk := conn.recv(65536)):
            answer += chunk.decode("latin-1")
    assert answer.startswith("HTTP/1.1 413") and "request_too_large" in answer, answer
    assert queued_count(gateway) == before
    assert not list(Path(gateway.log_path.parent / "uploads").glob("*.upload"))


def test_json_base64_submission_cancel_and_object_level_404(gateway: GatewayProcess) -> None:
    import base64

    png = png_bytes(render("Hello jobs", font_path=font_paths("en")[0], dpi=150))
    response = httpx.post(
        f"{gateway.url}/v1/jobs",
        json={"type": "ocr", "content": base64.b64encode(png).decode(), "filename": "x.png"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    finished(gateway, job_id)
    assert httpx.delete(f"{gateway.url}/v1/jobs/{job_id}", timeout=10).status_code == 409
    job = httpx.get(f"{gateway.url}/v1/jobs/{job_id}", timeout=10).json()
    assert set(job["owner"]) == {"user_id", "api_key_id"}
    types = httpx.get(f"{gateway.url}/v1/jobs/types", timeout=10)
    assert types.status_code == 200, types.text
    offered = {item["type"]: item["input"] for item in types.json()["data"]}
    assert offered["ocr"] == "file" and offered["summarize"] == "text" and "evaluation" not in offered
    missing = httpx.get(f"{gateway.url}/v1/jobs/0123456789abcdef0123456789abcdef", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"


def test_the_daily_page_quota_refuses_a_submission_that_would_pass_it(gateway: GatewayProcess) -> None:
    frames = [Image.new("L", (64, 64), 255) for _ in range(40)]
    out = io.BytesIO()
    frames[0].save(out, format="TIFF", save_all=True, append_images=frames[1:])
    response = submit(gateway, out.getvalue(), name="many.tif", content_type="image/tiff")
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "page_quota_exceeded"


PIPELINE_CONFIG = """
models:
  mock-fast: {provider: mock, tier: cheap}
"""
PASSWORD = "amber-lantern-pebble-73"


@pytest.fixture(scope="module")
def owned_gateway(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str
) -> Iterator[tuple[GatewayProcess, str]]:
    """A gateway on Postgres with auth on (in-process jobs worker, no broker), and a user's key."""
    tmp = tmp_path_factory.mktemp("jobs-owned")
    env = {
        "GATEWAY_DATABASE_URL": pg_url,
        "GATEWAY_AUTH_ENABLED": "true",
        "GATEWAY_JOBS_STORAGE_DIR": str(tmp / "uploads"),
        "GATEWAY_JOBS_MODEL": "mock-fast",
    }
    with (
        running_gateway(tmp, config=PIPELINE_CONFIG, env=env, ready_timeout=180.0) as gw,
        httpx.Client(base_url=gw.url, timeout=30) as http,
    ):
        email = f"jobs-{uuid.uuid4().hex[:8]}@example.com"
        assert http.post("/auth/register", json={"email": email, "password": PASSWORD}).status_code == 202
        token = http.post("/auth/login", json={"email": email, "password": PASSWORD}).json()["access_token"]
        created = http.post("/api/keys", json={"name": "jobs"}, headers={"Authorization": f"Bearer {token}"})
        assert created.status_code in (200, 201), created.text
        yield gw, created.json()["key"]


def pipeline_rows(pg_url: str, job_id: str) -> tuple[list[Any], Any]:
    """The usage rows of the pipeline's model calls made since the job was created (``pipe-…``),
    and the job's own row (owner and the ``job-<id>`` record)."""

    async def fetch() -> tuple[list[Any], Any]:
        conn = await asyncpg.connect(asyncpg_dsn(pg_url))
        try:
            job = await conn.fetchrow(
                "SELECT user_id, api_key_id, created_at FROM jobs WHERE id = $1", job_id
            )
            rows = await conn.fetch(
                "SELECT request_id, user_id, api_key_id, model_served, status, prompt_tokens"
                " FROM usage_logs WHERE request_id LIKE 'pipe-%' AND api_key_id = $1 AND created_at >= $2",
                job["api_key_id"],
                job["created_at"],
            )
            return list(rows), job
        finally:
            await conn.close()

    return asyncio.run(fetch())


def run_owned(
    gw: GatewayProcess,
    key: str,
    data: bytes,
    *,
    name: str,
    content_type: str,
    job_type: str,
    options: str | None = None,
) -> Any:
    response = submit(
        gw,
        data,
        name=name,
        content_type=content_type,
        job_type=job_type,
        options=options,
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = httpx.get(
            f"{gw.url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}, timeout=10
        ).json()
        return body if body["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait_until(done, f"job {job_id} finished", within_s=120)
    assert job["status"] == "succeeded", job
    result = httpx.get(
        f"{gw.url}/v1/jobs/{job_id}/result", headers={"Authorization": f"Bearer {key}"}, timeout=10
    ).json()["result"]
    return job_id, result


def owned_calls(pg_url: str, job_id: str, calls: int) -> list[Any]:
    """Waits for ``calls`` usage rows of the job's model calls; each is the job owner's."""

    def enough() -> list[Any] | None:
        rows, _job = pipeline_rows(pg_url, job_id)
        return rows if len(rows) >= calls else None

    rows = wait_until(enough, f"{calls} usage rows of job {job_id}", within_s=30)
    _rows, job = pipeline_rows(pg_url, job_id)
    assert job["user_id"] and job["api_key_id"]
    for row in rows:
        assert (row["user_id"], row["api_key_id"]) == (job["user_id"], job["api_key_id"])
        assert row["model_served"] == "mock-fast" and row["status"] == "ok"
    return rows


def test_document_analysis_job_on_a_gongmun_text_and_pdf(
    owned_gateway: tuple[GatewayProcess, str], pg_url: str, tmp_path: Path
) -> None:
    gw, key = owned_gateway
    letter = next(x for x in generate("dev", per_layout=3, seed=5) if x.language == "ko")
    pdf = tmp_path / "letter.pdf"
    render_pdf(letter.text, pdf)
    for data, name, kind in (
        (letter.text.encode(), "letter.txt", "text/plain"),
        (pdf.read_bytes(), "letter.pdf", "application/pdf"),
    ):
        job_id, document = run_owned(
            gw, key, data, name=name, content_type=kind, job_type="document_analysis"
        )
        assert document["language"] == "ko" and document["model"] == "mock-fast", document
        fields = document["fields"]
        for field in ("title", "doc_number", "sender_org"):
            assert fields[field]["source"] == "parser"
            assert "".join(str(fields[field]["value"]).split()) == "".join(str(letter.truth[field]).split())
        rows = owned_calls(pg_url, job_id, 1)
        assert len(rows) == 1  # the LLM step: one model call, one usage row, the owner's


def test_summarize_job_charges_every_model_call_to_the_owner(
    owned_gateway: tuple[GatewayProcess, str], pg_url: str
) -> None:
    gw, key = owned_gateway
    text = "\n\n".join(generate("dev", per_layout=1, seed=3)[0].text for _ in range(2))
    forged = '{"_principal": {"user_id": "someone-else", "role": "admin"}, "chunk_chars": 300}'
    job_id, result = run_owned(
        gw,
        key,
        text.encode(),
        name="doc.txt",
        content_type="text/plain",
        job_type="summarize",
        options=forged,  # a caller's "_principal" is dropped: the calls are the owner's
    )
    assert result["summary"] and result["model"] == "mock-fast" and result["language"] == "ko", result
    assert result["chunks"] > 1 and result["calls"] > result["chunks"]  # map, then reduce
    rows = owned_calls(pg_url, job_id, result["calls"])
    assert len(rows) == result["calls"]
    assert sum(row["prompt_tokens"] for row in rows) > 0
