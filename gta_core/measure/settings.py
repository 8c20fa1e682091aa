"""How candidates are built and timed: builder/runner settings and the ``--rpc`` form."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

RPC_FORM = "tracker=HOST:PORT,key=KEY[,session_timeout=S]"


class RPCSpecError(ValueError):
    """A malformed ``--rpc`` value; the message is one line naming the bad part."""


class RPCUnavailable(RuntimeError):
    """The RPC tracker cannot be reached or has no server with the key; one line."""


class RPCSettings(BaseModel):
    """Where remote measurements go: a TVM RPC tracker and the device key to ask it for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracker_host: str = Field(min_length=1)
    tracker_port: int = Field(ge=1, le=65535)
    key: str = Field(min_length=1)
    # The server ends a session after this long, so it bounds one remote run; None takes the
    # measurement's run timeout.
    session_timeout_s: float | None = Field(default=None, gt=0)


class MeasureSettings(BaseModel):
    """Builder and runner settings for one search.

    Defaults fit a small, shared CPU host (measured on 2 Zen 4 cores): builds get 300 s,
    since TVM's 30 s failed realistic candidates here under load (mostly the intrinsic
    imports ``build_candidate`` skips) and the limit should only cut off pathological
    builds; one build worker, since builds take 0.1-0.4 s each and a second worker was
    ~25% faster on an idle machine but ~35-60% slower with other work running.

    Timing: after one warm-up run, each of ``repeat`` repeats lasts at least
    ``min_repeat_ms`` (``number`` is raised until it does); the latency is their median.
    Many short repeats, not MetaSchedule's few 100 ms ones: on shared cores every long
    repeat absorbs other processes' time slices (5 x 50 ms: medians 1.4-3x the idle figure
    with two other jobs running), while the median of 10 x 1 ms was within 5% in 11 of 12.
    """

    model_config = ConfigDict(extra="forbid")

    build_timeout_s: float = Field(default=300.0, gt=0)
    run_timeout_s: float = Field(default=60.0, gt=0)
    number: int = Field(default=1, ge=1)  # runs averaged into one repeat
    repeat: int = Field(default=10, ge=1)  # repeats; the latency is their median
    min_repeat_ms: int = Field(default=1, ge=0)  # raises `number` until a repeat lasts this long
    enable_cpu_cache_flush: bool = False
    # Where a flush leaves the arguments (CPU, local runs): "memory" (clflush, every level),
    # "llc" (each core's private caches overwritten, the last-level cache kept: a model that
    # fits there, see measure.scrub) or "auto" (for a model: "llc" where it fits half the
    # last-level cache, else "memory"; see flushed_to_fit; model_settings' choice).
    flush_to: Literal["auto", "memory", "llc"] = "memory"
    builder_workers: int = Field(default=1, ge=1)
    rpc: RPCSettings | None = None
    # Measured elsewhere, in rounds written to and read back from this directory (offline.py)
    offline: Path | None = None

    @field_validator("rpc", mode="before")
    @classmethod
    def _rpc_from_text(cls, value: object) -> object:
        return parse_rpc(value) if isinstance(value, str) else value


def model_settings(settings: MeasureSettings | None = None) -> MeasureSettings:
    """``settings`` (the defaults when None) as a model's functions are timed: each run after
    the caches are flushed of every argument but the first, one run per repeat, to where the
    model leaves them (``flush_to="auto"``, resolved by :func:`flushed_to_fit`).

    In a model, a function's weights (and its residual input, its output buffer) come from
    memory: the model's other functions have used the caches since. The first argument, the
    activation the function before it just wrote, is still there. Timed with warm caches, the
    tuner picks programs that are fast only from cache: MobileNet-V2 tuned 300 trials each
    way ran in 3.36 ms tuned warm and 3.00 ms tuned cold (onnxruntime 2.23, 10 interleaved
    rounds, Zen 5), its early layers 2-3x slower in the model than as tuned.
    """
    given = settings or MeasureSettings()
    return given.model_copy(update={"enable_cpu_cache_flush": True, "min_repeat_ms": 0,
                                    "number": 1, "flush_to": "auto"})


def flushed_to_fit(settings: MeasureSettings, model_bytes: int,
                   cache_bytes: dict[str, int]) -> MeasureSettings:
    """``settings`` with a flush left at "auto" resolved for a model of ``model_bytes``
    (what one inference reads and writes: inputs, weights and the tensors its functions
    write, :func:`gta_core.frontends.written_bytes`) on a CPU whose caches per level are
    ``cache_bytes``: "llc" when that takes at most half the last-level cache (the rest is
    whatever else runs), else "memory".

    The activations count: between two uses of a weight they all pass through the cache.
    MobileNet-V2's 14.6 MB of weights fit half this Zen 4's 32 MB L3, but an inference also
    writes 27 MB. Its 960 -> 320 projection, as tuned with the weights in L3 at 1000
    trials, took 130 us then and 190-200 in the model; a program tuned with them in
    memory took 140 in both.

    In a compiled model each function's weights were last used an inference ago: in the
    last-level cache when the model fits there, in memory when it does not. On an Intel
    Xeon with a 480 MB L3 (ResNet-18 at 128x128, 256 trials), the ten largest functions ran
    in the model at 0.95-1.08x their time as tuned from L3, and at 0.60-1.03x their time as
    tuned from memory (the weight-heavy layers overestimated 1.4-1.7x).
    """
    if not settings.enable_cpu_cache_flush or settings.flush_to != "auto":
        return settings
    last = max((level for level in cache_bytes if level.startswith("L")),
               key=lambda level: int(level[1:]), default=None)
    fits = last not in (None, "L1", "L2") and model_bytes <= cache_bytes[last] // 2
    return settings.model_copy(update={"flush_to": "llc" if fits else "memory"})


def _bad(text: str, why: str) -> RPCSpecError:
    return RPCSpecError(f"bad RPC spec {text!r}: {why} (expected {RPC_FORM})")


def parse_rpc(text: str) -> RPCSettings:
    """``tracker=HOST:PORT,key=KEY[,session_timeout=S]`` as :class:`RPCSettings`.

    Raises :class:`RPCSpecError` (a ``ValueError``) naming the bad part.
    """
    if not text or not text.strip():
        raise RPCSpecError(f"empty RPC spec (expected {RPC_FORM})")
    fields: dict[str, str] = {}
    for item in text.split(","):
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not name:
            raise _bad(text, f"{item.strip()!r} is not FIELD=VALUE")
        if name not in ("tracker", "key", "session_timeout"):
            raise _bad(text, f"unknown field {name!r}")
        if name in fields:
            raise _bad(text, f"{name!r} is given twice")
        if not value:
            raise _bad(text, f"{name!r} is empty")
        fields[name] = value
    for required in ("tracker", "key"):
        if required not in fields:
            raise _bad(text, f"no {required!r}")
    host, sep, port = fields["tracker"].rpartition(":")
    host = host.strip("[]")  # an IPv6 host may be bracketed: [::1]:9190
    if not sep or not host:
        raise _bad(text, f"tracker {fields['tracker']!r} is not HOST:PORT")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise _bad(text, f"tracker port {port!r} is not a number in 1-65535")
    timeout: float | None = None
    if "session_timeout" in fields:
        try:
            timeout = float(fields["session_timeout"])
        except ValueError:
            timeout = None
        if timeout is None or not timeout > 0 or timeout == float("inf"):
            raise _bad(text, f"session_timeout {fields['session_timeout']!r} is not a positive "
                             "number of seconds")
    return RPCSettings(tracker_host=host, tracker_port=int(port), key=fields["key"],
                       session_timeout_s=timeout)
