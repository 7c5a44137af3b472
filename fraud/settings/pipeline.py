"""Pipeline settings from `config/pipeline.yaml` (and environment), validated on load.

Only what the detector needs lives here; each field is checked so a typo fails fast with a message
naming the file and the field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from fraud.core.detector import RUN_MAX, DetectorSettings
from fraud.core.records import Limits, parse_time, use_limits
from fraud.core.units import parse_duration
from fraud.defaults import runs_dir, shipped
from fraud.errors import ConfigError
from fraud.settings.yaml_files import parse_yaml
from fraud.state.store import MAX_EVENTS_PER_CARD

DEFAULT_CONFIG = shipped("config", "pipeline.yaml")
DEFAULT_RULES = shipped("config", "rules.yaml")
DEFAULT_MODEL = shipped("models", "default")
DEMO_DIR = runs_dir() / "demo"
KAFKA_STATE_DIR = runs_dir() / "kafka-state"


def duration_ms(value: object, where: str) -> int:
    """'5s', '90m', '1d', '250ms' or a number of milliseconds."""
    if type(value) is int and value >= 0:
        return value
    if isinstance(value, str) and (ms := parse_duration(value)) is not None:
        return ms
    raise ConfigError(f"{where}: expected a duration such as 5s, 90m, 1d or milliseconds, got {value!r}")


@dataclass
class PipelineConfig:
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    checkpoint_every: int = 100_000  # records between checkpoints at most ...
    checkpoint_interval_ms: int = 1_000  # ... and time between them at most (embedded)
    cache_cards: int = 100_000
    run_max: int = RUN_MAX  # events per kernel call at most, embedded
    kafka: dict = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    source: str = "<defaults>"


_SCHEMA = {
    "detector": {"watermark_bound", "allowed_lateness", "run_max", "max_events_per_card"},
    "state": {"checkpoint_every", "checkpoint_interval", "cache_cards"},
    "limits": {"record_bytes", "id_chars", "amount_max", "event_time_min", "event_time_max"},
    "kafka": None,  # free-form: validated by the Kafka runner
}


def _cap(v: object, path: object) -> int:
    if type(v) is not int or not 16 <= v <= 1_000_000:
        raise ConfigError(f"{path}: detector.max_events_per_card: must be an integer from 16 to 1,000,000, got {v!r}")
    return v


def load_config(path: str | Path | None = None) -> PipelineConfig:
    """Read the pipeline YAML (default config/pipeline.yaml; a missing default file means defaults).
    Its record limits apply to every decode in the process from here on (`records.use_limits`)."""
    cfg = _read_config(path)
    use_limits(cfg.limits)
    return cfg


def _limits(section: dict, path: Path) -> Limits:
    """The `limits` section: sizes as positive integers, the amount as a number, times as ISO text or
    epoch milliseconds; each mistake named by file and field."""
    values = {}
    for key in ("record_bytes", "id_chars"):
        if key in section:
            v = section[key]
            if type(v) is not int or v < 1:
                raise ConfigError(f"{path}: limits.{key}: must be a positive integer, got {v!r}")
            values[key] = v
    if "amount_max" in section:
        v = section["amount_max"]
        if type(v) not in (int, float) or not v > 0 or v == float("inf"):
            raise ConfigError(f"{path}: limits.amount_max: must be a positive finite number, got {v!r}")
        values["amount_max"] = float(v)
    for key in ("event_time_min", "event_time_max"):
        if key in section:
            v = section[key]
            if hasattr(v, "isoformat"):  # YAML reads an unquoted date or time as one
                v = v.isoformat()
            try:
                values[key + "_ms"] = parse_time(v, f"limits.{key}")
            except ValueError as exc:
                raise ConfigError(f"{path}: {exc}") from None
    lim = replace(Limits(), **values)
    if lim.event_time_min_ms >= lim.event_time_max_ms:
        raise ConfigError(f"{path}: limits.event_time_min: must be before limits.event_time_max")
    return lim


def _read_config(path: str | Path | None) -> PipelineConfig:
    explicit = path is not None
    path = Path(path) if explicit else Path(os.environ.get("FRAUD_CONFIG", DEFAULT_CONFIG))
    if not path.exists():
        if explicit:
            raise ConfigError(f"{path}: config file not found")
        return PipelineConfig()
    doc = parse_yaml(path.read_text(encoding="utf-8"), str(path)) or {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    for section, value in doc.items():
        if section not in _SCHEMA:
            raise ConfigError(f"{path}: unknown section {section!r} (known: {', '.join(_SCHEMA)})")
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {section}: must be a mapping")
        allowed = _SCHEMA[section]
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    raise ConfigError(f"{path}: {section}.{key}: unknown field (known: {', '.join(sorted(allowed))})")
    det = doc.get("detector", {})
    st = doc.get("state", {})
    cfg = PipelineConfig(
        source=str(path), kafka=dict(doc.get("kafka", {})), limits=_limits(doc.get("limits", {}), path)
    )
    from fraud.settings.kafka import kafka_settings

    kafka_settings(cfg.kafka, str(path), env={})  # validate now: fail fast, naming file and field
    cfg.detector = DetectorSettings(
        watermark_bound_ms=duration_ms(det.get("watermark_bound", "5s"), f"{path}: detector.watermark_bound"),
        allowed_lateness_ms=duration_ms(det.get("allowed_lateness", "1d"), f"{path}: detector.allowed_lateness"),
        max_events_per_card=_cap(det.get("max_events_per_card", MAX_EVENTS_PER_CARD), path),
    )
    if "checkpoint_interval" in st:
        cfg.checkpoint_interval_ms = duration_ms(st["checkpoint_interval"], f"{path}: state.checkpoint_interval")
    for section, values, key in (
        ("state", st, "checkpoint_every"),
        ("state", st, "cache_cards"),
        ("detector", det, "run_max"),
    ):
        if key in values:
            v = values[key]
            if type(v) is not int or v < 1 or (key == "run_max" and v > 4096):
                raise ConfigError(
                    f"{path}: {section}.{key}: must be a positive integer"
                    + (" up to 4096" if key == "run_max" else "")
                    + f", got {v!r}"
                )
            setattr(cfg, key, v)
    return cfg
