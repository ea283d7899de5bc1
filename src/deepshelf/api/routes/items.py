"""The catalogue: upserts (with an optional inline image), one item, pages of items, product images."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timezone
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Path, Query, Response

from deepshelf.api.deps import PrivateAuth, PublicRead, ServiceDep, SettingsDep, invalid
from deepshelf.api.schemas import Accepted, ItemBatchIn, ItemIn, ItemOut, ItemPage
from deepshelf.engine.settings import Settings
from deepshelf.data.fields import Id, Line
from deepshelf.storage import Item

router = APIRouter(prefix="/v1", tags=["catalogue"])

ItemId = Annotated[Id, Path()]
# Magic numbers of the image formats a browser shows; anything else is refused rather than served back.
IMAGE_TYPES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF8", "image/gif"))


def _image(raw: str, settings: Settings, field: str) -> tuple[str, bytes]:
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("body", field, "not valid base64") from None
    if len(data) > settings.max_image_bytes:
        raise invalid("body", field, f"image larger than {settings.max_image_bytes} bytes", len(data))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", data
    for magic, kind in IMAGE_TYPES:
        if data.startswith(magic):
            return kind, data
    raise invalid("body", field, "not a JPEG, PNG, GIF or WebP image")


def _upsert(service, settings: Settings, pairs: list[tuple[str, ItemIn]], field: str) -> int:
    images = []
    rows = []
    for n, (item_id, body) in enumerate(pairs):
        if body.image_base64:
            where = f"{field}[{n}].image_base64" if field != "image_base64" else field
            images.append((item_id, *_image(body.image_base64, settings, where)))
        rows.append(Item(item_id=item_id, title=body.title, description=body.description, category=body.category,
                         price=body.price, in_stock=body.in_stock, image_url=body.image_url,
                         attributes=dict(body.attributes)))
    for item_id, kind, data in images:  # images first: a visible item never points at a missing image
        service.store.put_image(item_id, kind, data)
    return service.upsert_items(rows)


def item_out(item: Item, known: bool) -> ItemOut:
    image = f"/v1/items/{quote(item.item_id, safe='')}/image" if item.has_image else (item.image_url or None)
    return ItemOut(item_id=item.item_id, title=item.title, description=item.description, category=item.category,
                   price=item.price, in_stock=item.in_stock, image=image, attributes=item.attributes,
                   known_to_model=known,
                   updated_at=datetime.fromtimestamp(item.updated_at, timezone.utc) if item.updated_at else None)


@router.put("/items/{item_id}", response_model=Accepted, dependencies=[PrivateAuth])
def put_item(item_id: ItemId, body: ItemIn, service: ServiceDep, settings: SettingsDep) -> Accepted:
    """Create or replace one product; recommendable at once (no retraining)."""
    return Accepted(accepted=_upsert(service, settings, [(item_id, body)], "image_base64"))


@router.post("/items", response_model=Accepted, dependencies=[PrivateAuth])
def post_items(batch: ItemBatchIn, service: ServiceDep, settings: SettingsDep) -> Accepted:
    """Create or replace a batch of products."""
    if len(batch.items) > settings.max_batch:
        raise invalid("body", "items", f"at most {settings.max_batch} items per request", len(batch.items))
    ids = [it.item_id for it in batch.items]
    if len(set(ids)) != len(ids):
        raise invalid("body", "items", "an item_id appears more than once in the batch")
    return Accepted(accepted=_upsert(service, settings, [(it.item_id, it) for it in batch.items], "items"))


@router.get("/items", response_model=ItemPage, dependencies=[PrivateAuth])
def list_items(service: ServiceDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
               offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
               category: Annotated[Line(256) | None, Query()] = None,
               q: Annotated[Line(500) | None, Query(description="title contains")] = None) -> ItemPage:
    """A page of the catalogue in id order (optionally one category, or titles containing `q`)."""
    items, total = service.store.list_items(limit, offset, category or None, q or None)
    return ItemPage(items=[item_out(it, _known_to_model(service, it.item_id)) for it in items], total=total,
                    limit=limit, offset=offset)


def _known_to_model(service, item_id: str) -> bool:
    state = service.state
    return state is not None and 0 <= state.view.snapshot.position(item_id) < state.n_model


@router.get("/items/{item_id}", response_model=ItemOut, dependencies=[PublicRead],
            responses={404: {"description": "unknown item"}})
def get_item(item_id: ItemId, service: ServiceDep) -> ItemOut:
    item = service.store.get_item(item_id)
    known = _known_to_model(service, item_id)
    if item is None:
        if known:  # in the run but without a catalogue row: still a real item
            return item_out(Item(item_id=item_id), True)
        raise HTTPException(404, f"item {item_id!r} not found")
    return item_out(item, known)


# Open: an <img> sends no header, and a product picture is as public as the shop's own image_url.
@router.get("/items/{item_id}/image", response_class=Response,
            responses={200: {"content": {"image/*": {}}}, 404: {"description": "no image"}})
def get_image(item_id: ItemId, service: ServiceDep) -> Response:
    found = service.store.get_image(item_id)
    if found is None:
        raise HTTPException(404, f"item {item_id!r} has no uploaded image")
    kind, data = found
    return Response(content=data, media_type=kind, headers={"Cache-Control": "public, max-age=300"})
