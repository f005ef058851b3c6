"""JSON bodies encoded by orjson (FastAPI's own ``ORJSONResponse`` is deprecated and warns per import)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class OrjsonResponse(JSONResponse):
    """``application/json`` rendered by orjson: non-string keys and numpy values allowed, as before."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)
