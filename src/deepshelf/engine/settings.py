"""Server settings: every knob comes from the environment (prefix `DEEPSHELF_`) or from `deepshelf serve` options."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


_ORIGIN = re.compile(r"^https?://[^/\s*]+$")  # scheme://host[:port], as a browser sends it in `Origin`


class Settings(BaseSettings):
    """Typed server configuration. `DEEPSHELF_API_KEYS=k1,k2` sets the private keys accepted in `X-API-Key`,
    `DEEPSHELF_PUBLIC_KEYS` the public ones."""

    model_config = SettingsConfigDict(env_prefix="DEEPSHELF_", extra="ignore")

    run: Path | None = None  # run folder (or a symlink to one: re-pointing it swaps the model)
    # sqlite:///path or postgresql://user@host:port/db. `deepshelf serve` requires it (--database or
    # DEEPSHELF_DATABASE); this default is only for create_app() called from Python without one.
    database: str = "sqlite:///deepshelf.db"
    # Two key scopes, each a comma-separated list (kept as text: pydantic-settings would otherwise expect JSON for
    # a list in an environment variable). Private keys (server-side) may call everything; public keys are safe
    # to ship in a web page: they may post events and read recommendations, similar items, search, popular and
    # one product, nothing else (README, "Service"). A key in both lists is refused at startup.
    api_keys: str = ""  # private keys
    public_keys: str = ""  # public keys (the storefront and the widget carry one)
    # The public-scope reads need a key (public or private) by default: with no keys configured nothing but
    # /health, /ready, the docs and the pages answers. False serves those reads to anyone without a key.
    require_key_for_reads: bool = True
    # Signs shopper tokens (X-Shopper-Token, deepshelf/tokens.py): with a public key (or none, where reads are
    # open), a personal list or a search for a shopper answers only with a valid token for that shopper. Empty:
    # tokens are off and those calls need a private key (logged at startup).
    token_secret: SecretStr = SecretStr("")
    # Origins (scheme://host:port, comma-separated) whose pages may call the API from a browser: the pages that
    # embed the widget (/v1/widget.js) on another host. None by default: only same-origin pages. `*` is refused at
    # startup (any site could then call the private routes from a browser).
    cors_origins: str = ""

    # ---- limits: requests beyond them get a 413 / 422 naming the field, never a slow answer or a 500 --------
    max_body_bytes: int = Field(default=1_000_000, gt=0)  # largest request body (413 above it)
    max_batch: int = Field(default=1000, gt=0)  # events per POST /v1/events, items per POST /v1/items
    max_k: int = Field(default=100, gt=0)  # longest list a request may ask for (`k`)
    max_history: int = Field(default=200, gt=0)  # most recent events of a shopper fed to the model
    max_session_items: int = Field(default=200, gt=0)  # item ids per session request
    max_image_bytes: int = Field(default=500_000, gt=0)  # largest uploaded product image (decoded)
    # The folder whose image files a product's `image_url` may name (a path or file:// URL) for its picture vector.
    # None: only uploaded images (image_base64) are read; any other local path is ignored, so a key holder cannot
    # make the server read files outside the shop's image folder.
    image_dir: Path | None = None
    # an event timestamp more than this far ahead of the server's clock is refused (422), as is one before 1970
    max_clock_skew_s: float = Field(default=86_400.0, gt=0)
    # /v1/stats/events: at most this many buckets per answer (default: a week of minutes)
    max_stats_buckets: int = Field(default=10_080, gt=0)
    stats_cache_s: float = Field(default=10.0, ge=0)  # /v1/stats/events answers are cached this long

    # ---- retrieval ---------------------------------------------------------------------------------------
    # Below this many items exact scoring is fast enough and is the reference; above it a FAISS index is built.
    ann_threshold: int = Field(default=50_000, gt=0)
    ann_nprobe: int = Field(default=24, gt=0)  # IVF lists searched per query (more: better recall, slower)

    # ---- business-rule defaults (a request can override each) ---------------------------------------------
    default_in_stock: bool = True  # hide out-of-stock products unless a request asks for them
    default_exclude_purchased: bool = True  # leave out what the shopper bought unless a request asks for it
    default_max_per_category: int | None = Field(default=None, gt=0)  # at most this many per category; none: no cap
    # Catalogue items the run has never seen (added since training) get up to this many slots per answer (0: off),
    # so a new product is shown without retraining: each replaces the list's last item and carries its own score
    # (text similarity to the shopper's recent items, reason `text`, when the run has content vectors; else its
    # live trending score, reason `new_arrival`); it follows the model's items, so a list is sorted by (slot, score)
    # (ranking.new_item_slots_fill).
    new_item_slots: int = Field(default=1, ge=0)
    # The same share per placement (e.g. {"home": 2, "cart": 0}); a request's `new_slots` overrides both. New
    # products here also count the run's own (a ranker's products never sold before its training: `new_items()`).
    new_item_slots_by_placement: dict[str, int] = Field(default_factory=dict)

    # ---- the shopper's current visit ---------------------------------------------------------------------
    # A known shopper's trailing events with gaps under `visit_gap_s`, the newest under `visit_gap_s` old, are
    # their current visit (its last `visit_events`); the model's answer for the visit alone fills `visit_share` of the first places of
    # "recommended for you" (every other one), so a long history still follows what was just clicked. 0: off.
    visit_gap_s: float = Field(default=1800.0, gt=0)
    visit_share: float = Field(default=0.5, ge=0, le=1)  # share of the first places the visit fills
    visit_events: int = Field(default=5, gt=0)  # the visit's most recent events the model is asked about

    # ---- freshness --------------------------------------------------------------------------------------
    trending_days: float = Field(default=7.0, gt=0)  # live trending counts the events of these last days
    trending_refresh_s: float = Field(default=10.0, gt=0)  # live trending is recomputed this often
    # A ranker scores with the shop's sales since its fit (re-read at each trending refresh: its sales per window,
    # trend, age and trending generator), so a product that starts selling is ranked by it before the next retrain
    # (engine/live_sales.py); false: the run scores as fit until it is replaced.
    follow_sales: bool = True
    catalog_refresh_s: float = Field(default=1.0, gt=0)  # how stale another server's catalogue upserts may be
    watch_interval_s: float = Field(default=2.0, gt=0)  # how often the run path's target is checked; 0 disables
    # Shoppers whose recent history a server process holds (engine/shoppers.py): events through any process on this
    # host drop theirs before the next list (storage/signal.py), a server's on another host within
    # `shopper_cache_poll_s`; 0: every list reads it.
    shopper_cache_size: int = Field(default=20_000, ge=0)
    shopper_cache_poll_s: float = Field(default=0.25, gt=0)  # how often servers on other hosts' events are looked for
    shopper_cache_max_age_s: float = Field(default=60.0, gt=0)  # a held history is read again after this long
    watch_run: bool = True  # follow the run path to a new target (false: only POST /v1/admin/reload swaps)

    sqlite_synchronous: str = "FULL"  # FULL: an acknowledged event survives a crash or power loss

    # ---- a slow store, overload: answered 503 + Retry-After, never a hang -------------------------------------
    # Bound on each store call: connecting, waiting for a free connection, each statement (SQLite: the lock wait).
    store_timeout_s: float = Field(default=2.0, gt=0, le=600)
    store_connections: int = Field(default=16, gt=0)  # PostgreSQL connections per server process, at most
    # Requests handled at once per server process; the next ones are answered 503 at once (not queued).
    max_concurrent_requests: int = Field(default=32, gt=0)
    body_timeout_s: float = Field(default=10.0, gt=0)  # a request body that stalls this long is answered 408
    # A connection that has not sent a whole request head this long after connecting or after its last answer is
    # closed (api/idle.py): half-open connections cannot hold the server's sockets.
    header_timeout_s: float = Field(default=10.0, gt=0)
    retry_after_s: int = Field(default=1, ge=0)  # the Retry-After of a 503

    # ---- online experiments (engine/experiments.py; the verdict's statistics in engine/verdict.py) ---------
    max_variant_runs: int = Field(default=4, gt=0)  # runs held for variants beside the served run; more: 409
    experiment_refresh_s: float = Field(default=5.0, gt=0)  # experiments defined elsewhere are served within this
    experiment_alpha: float = Field(default=0.01, gt=0, lt=0.5)  # significance of the verdict
    experiment_min_impressions: int = Field(default=100, ge=1)  # per variant, before any winner is named

    # ---- impressions and attribution (engine/impressions.py, storage/attribution.py) -------------------------
    record_impressions: bool = True  # record every list answer shown (for analytics and experiments)
    impression_flush_s: float = Field(default=0.5, gt=0)  # the background writer stores what it has this often...
    impression_batch: int = Field(default=1000, gt=0)  # ... or as soon as this many lists wait
    # lists waiting beyond this (the store slow or down) are dropped and counted, never waited for
    impression_queue: int = Field(default=100_000, gt=0)
    # a purchase this long after a click on a recommended item is attributed to that recommendation (default 24 h)
    attribution_window_s: float = Field(default=86_400.0, gt=0)

    @field_validator("sqlite_synchronous")
    @classmethod
    def _sync_mode(cls, value: str) -> str:
        if value.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("sqlite_synchronous must be FULL, EXTRA or NORMAL")
        return value.upper()

    @field_validator("cors_origins")
    @classmethod
    def _named_origins(cls, value: str) -> str:
        # `*` would let any site's page call every route, private ones included, from a visitor's browser with
        # whatever key it finds or is given: each origin is named instead.
        for origin in _split(value):
            if "*" in origin:
                raise ValueError(f"{origin!r} is refused: name each origin whose pages may "
                                 "call the API (e.g. https://shop.example), never a wildcard")
            if not _ORIGIN.match(origin):
                raise ValueError(f"{origin!r} is not an origin: expected scheme://host or "
                                 "scheme://host:port, without a path")
        return value

    @model_validator(mode="after")
    def _scopes_apart(self):
        if self.keys & self.public_key_set:
            raise ValueError("a key is listed in both DEEPSHELF_API_KEYS and DEEPSHELF_PUBLIC_KEYS; "
                             "a public key must not also be a private one")
        return self

    @property
    def keys(self) -> frozenset[str]:
        """The private keys."""
        return _split(self.api_keys)

    @property
    def public_key_set(self) -> frozenset[str]:
        return _split(self.public_keys)

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return tuple(sorted(_split(self.cors_origins)))


@functools.lru_cache(maxsize=64)
def _split(keys: str) -> frozenset[str]:
    """The comma-separated entries of a setting. Cached by the string itself (the key checks read `keys` and
    `public_key_set` on every request; a setting changed later is another string, parsed once)."""
    return frozenset(k.strip() for k in keys.split(",") if k.strip())
