"""What the monitor writes (contract §3): findings, amplification measurements, dead letters.

These are plain msgspec Structs so that the same objects are written to DuckDB by the replay
and the sink, and published as JSON on the ``amplimon.findings`` / ``amplimon.deadletter``
topics by the worker.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Any, Final, Literal

import msgspec

__all__ = [
    "DeadLetter",
    "Detectability",
    "Finding",
    "Measurement",
    "RAW_LIMIT",
    "REASON_LIMIT",
    "SEVERITIES",
    "STATUSES",
    "finding_id",
    "keep_latest",
    "ms_to_datetime",
    "utc_now",
]

SEVERITIES: Final = ("low", "medium", "high", "critical")
STATUSES: Final = ("new", "acknowledged", "escalated", "dismissed", "resolved")
SubjectKind = Literal["actor", "group", "item"]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def ms_to_datetime(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def finding_id(
    detector: str,
    platform: str,
    region: str,
    window_id: str,
    surface: str | None,
    subject_kind: str,
    subject: str,
) -> str:
    """Stable id: same detector, platform, region, window, surface and subject → same id.

    ``sha256("detector|platform|region|window|surface|subject_kind|subject")[:20]``.
    """
    key = "|".join((detector, platform, region, window_id, surface or "*", subject_kind, subject))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


class Finding(msgspec.Struct, kw_only=True):
    """One row of the ``findings`` table (contract §3) plus ``first_tick`` (extension)."""

    finding_id: str
    detector: str
    kind: str
    platform: str
    region: str
    window_id: str
    surface: str | None = None
    subject_kind: str
    subject: str
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n_exposures: int
    severity: str
    event_time: dt.datetime
    detected_at: dt.datetime
    evidence: dict[str, Any]
    status: str = "new"

    @classmethod
    def new(
        cls,
        *,
        detector: str,
        kind: str,
        platform: str,
        region: str,
        window_id: str,
        subject_kind: str,
        subject: str,
        surface: str | None = None,
        **values: Any,
    ) -> Finding:
        fid = finding_id(detector, platform, region, window_id, surface, subject_kind, subject)
        values.setdefault("detected_at", utc_now())
        return cls(
            finding_id=fid,
            detector=detector,
            kind=kind,
            platform=platform,
            region=region,
            window_id=window_id,
            surface=surface,
            subject_kind=subject_kind,
            subject=subject,
            **values,
        )


class Measurement(msgspec.Struct, kw_only=True):
    """One row of the ``amplification`` table (contract §3)."""

    platform: str
    region: str
    window_id: str
    period: str
    subject_kind: str
    subject: str
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    reach_ratio: float | None
    n_ranked: int
    n_holdout: int
    users_ranked: int
    users_holdout: int
    reach_ranked: int = 0
    reach_holdout: int = 0
    computed_at: dt.datetime = msgspec.field(default_factory=utc_now)

    @property
    def key(self) -> tuple[str, str, str, str, str, str]:
        """The row's primary key in the ``amplification`` table."""
        return (
            self.platform,
            self.region,
            self.window_id,
            self.period,
            self.subject_kind,
            self.subject,
        )


class Detectability(msgspec.Struct, kw_only=True):
    """One row of the ``detectability`` table (extension): for a subject at the end of the
    window (or the stream), the smallest multiplicative effects up (``mde_up`` > 1) and down
    (``mde_down`` < 1) that the detector's test would have flagged with the evidence it had."""

    detector: str
    platform: str
    region: str
    window_id: str
    subject_kind: str
    subject: str
    mde_up: float | None
    mde_down: float | None
    n_exposures: int
    flagged: bool
    computed_at: dt.datetime = msgspec.field(default_factory=utc_now)


#: Dead-letter text is cut to this many UTF-8 bytes (the whole record's size and SHA-256 are
#: kept): a hostile record can be of any size, and each dead letter travels as one Kafka
#: message and one DuckDB row.  64 KiB shows any malformation; JSON escaping can grow it at
#: most 6-fold (``\u00XX``), which stays far below a Kafka message's 1 MiB.
RAW_LIMIT: Final = 64 * 1024
#: Reasons are short (the contract's decoder quotes at most 60 characters of a value); the
#: bound only guards against a reason built from a hostile value elsewhere.
REASON_LIMIT: Final = 1024


class DeadLetter(msgspec.Struct, kw_only=True):
    """One row of the ``deadletter`` table: the raw text and why it was rejected.

    ``location`` (extension) names the line (``file:line``) or the Kafka record
    (``topic:<content hash>#<n>``); ``dl_id`` makes re-running idempotent.

    **Bounded** (extension): ``raw_bytes`` and ``raw_sha256`` are the UTF-8 size and SHA-256
    (hex) of the whole text as given; ``raw`` keeps at most :data:`RAW_LIMIT` bytes of it,
    cut at a character boundary (``raw_bytes`` > the bytes of ``raw`` ⇔ cut), and ``reason``
    at most :data:`REASON_LIMIT` characters.  Every producer of dead letters (the engine, the
    Kafka driver) goes through this constructor, and a decoded message through it again, so
    no dead letter anywhere is larger — and re-bounding one changes nothing.  Text that
    cannot be encoded (lone surrogates) is measured and hashed with ``?`` in their place.
    """

    source: str
    raw: str
    reason: str
    location: str = ""
    received_at: dt.datetime = msgspec.field(default_factory=utc_now)
    raw_bytes: int | None = None
    raw_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.raw_bytes is None or self.raw_sha256 is None:
            data = self.raw.encode("utf-8", "replace")
            self.raw_bytes, self.raw_sha256 = len(data), hashlib.sha256(data).hexdigest()
        else:
            data = self.raw.encode("utf-8", "replace") if len(self.raw) > RAW_LIMIT // 4 else b""
        if len(data) > RAW_LIMIT:
            self.raw = data[:RAW_LIMIT].decode("utf-8", "ignore")
        if len(self.reason) > REASON_LIMIT:
            self.reason = self.reason[: REASON_LIMIT - 1] + "…"

    @property
    def truncated(self) -> bool:
        """Whether ``raw`` holds only the beginning of the record."""
        return self.raw_bytes is not None and self.raw_bytes > len(
            self.raw.encode("utf-8", "replace")
        )

    @property
    def dl_id(self) -> str:
        key = (
            f"{self.source}|{self.location}|{self.reason}"
            if self.location
            else (f"{self.source}|{self.raw_sha256}|{self.reason}")
        )
        return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:24]


def keep_latest(latest: dict[str, Finding], rows: Iterable[Finding]) -> None:
    """Fold finding updates into ``latest`` (by id): the newest version's numbers, the
    earliest ``event_time`` (when the evidence first crossed), as the store keeps them."""
    for f in rows:
        old = latest.get(f.finding_id)
        if old is not None and old.event_time < f.event_time:
            f.event_time = old.event_time
        latest[f.finding_id] = f
