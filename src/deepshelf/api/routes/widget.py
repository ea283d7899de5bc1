"""The embeddable widget's script, `GET /v1/widget.js`: open (a <script src> sends no key; the script itself carries
none, the page gives it its public key in `data-key`). The script is `web/widget.js`; README, "Widget"."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from deepshelf.api.routes.system import web_dir

router = APIRouter(prefix="/v1", tags=["widget"])

_JS = "text/javascript; charset=utf-8"


@router.get("/widget.js", response_class=Response,
            responses={200: {"content": {_JS: {}}, "description": "the widget's script"},
                       404: {"description": "the web files are not installed with this server"}})
def widget_js() -> Response:
    """The carousel script a shop puts on any page: `<script src="…/v1/widget.js" data-key="PUBLIC_KEY"
    data-placement="home" data-user="…">` (or `data-placement="product"` / `"cart"` with `data-item`). The page's
    origin must be listed in the server's `cors_origins`."""
    path = web_dir() / "widget.js"
    if not path.is_file():
        raise HTTPException(404, "the widget script is not installed with this server")
    # Short cache: a shop's pages pick up a new version of the widget within minutes of an upgrade.
    return Response(path.read_bytes(), media_type=_JS, headers={"Cache-Control": "public, max-age=300"})
