"""Checks and loaders the commands share: files that must exist or must not collide, one mode
at a time, the detector's parts, the fingerprint of a run. All raise UserError (one line, no trace)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import orjson

from fraud.errors import UserError
from fraud.settings.pipeline import DEFAULT_MODEL, DEFAULT_RULES


def _need_file(path: str, what: str) -> None:
    if path != "-" and not Path(path).is_file():
        raise UserError(f"{path}: {what} {'is a directory' if Path(path).is_dir() else 'not found'}")


def _file_key(path: str) -> object:
    """What makes two paths one file: device and inode for an existing regular file (so through a
    symlink or a hard link), the real path for one still to be written, None for a device or folder."""
    if not os.path.exists(path):
        return os.path.realpath(path)
    if not os.path.isfile(path):
        return None
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def _distinct_files(**paths: str | None) -> None:
    """Refuse to write over an input, or two outputs into one file (devices such as /dev/null and
    stdout '-' may repeat). Keyword names are the options (`dead_letter` for `--dead-letter`)."""
    seen: dict[object, str] = {}
    for name, path in paths.items():
        if not path or path == "-" or (key := _file_key(path)) is None:
            continue
        option = "--" + name.replace("_", "-")
        if key in seen:
            raise UserError(f"{option} and {seen[key]} are the same file: {path}")
        seen[key] = option


def _check_outputs(**paths: str | None) -> None:
    """Before any work: an output is not a directory, and never one of the shipped files that
    commands read by default (config/, models/default/), even when the command does not read it now."""
    from fraud.settings.pipeline import DEFAULT_CONFIG

    shipped = {_file_key(str(p)): p for p in [DEFAULT_CONFIG, DEFAULT_RULES, *DEFAULT_MODEL.glob("*")] if p.is_file()}
    for name, path in paths.items():
        if not path or path == "-":
            continue
        option = "--" + name.replace("_", "-")
        if os.path.isdir(path):
            raise UserError(f"{option} {path} is a directory, not a file")
        if os.path.isfile(path) and (hit := shipped.get(_file_key(path))):
            raise UserError(f"{option} {path} would overwrite the shipped {hit}")


def _one_mode(kafka: str | None, kafka_only: dict[str, object], file_only: dict[str, object]) -> None:
    """An option of the other mode is refused, never silently ignored (a forgotten --input next to
    --kafka would otherwise join a production consumer group)."""
    given = [
        name for name, value in (file_only if kafka else kafka_only).items() if value is not None and value is not False
    ]
    if given:
        option = "--" + given[0].replace("_", "-")
        raise UserError(f"{option} is for files, not --kafka" if kafka else f"{option} needs --kafka")


class _Terminated(Exception):
    """SIGTERM, raised where the process is so that `finally` blocks run (the default kills it)."""


def _terminated(signum, frame) -> None:
    raise _Terminated


def _run_id(
    model_json: str | None, rules: str, settings: object, feedback: str | None, shadow_json: str | None = None
) -> str:
    """Fingerprint of what decides (and of the shadow model that scores beside it): a checkpoint
    taken under another one is not resumed. The rules file counts by its path, not its content: its
    content may change during a run (`RulesWatch`), and so between a checkpoint and the resume; each
    decision records its `rules_version`."""
    import hashlib

    from fraud.offline.training import file_digest

    parts = [file_digest(p) if p and Path(p).is_file() else "" for p in (model_json, feedback)]
    parts.append(str(Path(rules).resolve()))
    parts.append(repr(settings))
    if shadow_json:
        parts.append(file_digest(shadow_json))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _load_feedback(path: str | None):
    if not path:
        return None
    from fraud.state.feedback import FeedbackIndex

    reports = FeedbackIndex.from_file(path)
    if reports.rejected:
        print(f"fraud: warning: {path}: {reports.rejected} invalid report(s) skipped", file=sys.stderr)
    return reports


def _warn_without_feedback(fast, model: str | None, source: str) -> None:
    """A model trained with fraud reports, served without them, sees no known fraud anywhere: its
    merchant fraud rates are empty and its scores are weaker than its model card says."""
    from fraud.scoring.features import FEEDBACK_FEATURES

    if fast is None or not set(fast.features) & FEEDBACK_FEATURES:
        return
    model_dir = Path(model or DEFAULT_MODEL)
    try:
        trained_with = orjson.loads((model_dir / "model_card.json").read_bytes())["training_data"]["feedback"]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        return  # no readable card: nothing to say
    if trained_with:
        print(
            f"fraud: warning: the model in {model_dir} was trained with fraud reports ({trained_with}); "
            f"without {source} its merchant fraud rates and known-fraud features stay empty",
            file=sys.stderr,
        )


def _detector_parts(model: str | None, rules: str | None, no_model: bool):
    from fraud.scoring.model import load_model
    from fraud.scoring.rules import load_rules

    if no_model and model:
        raise UserError("--model and --no-model exclude each other")
    rule_set = load_rules(rules or DEFAULT_RULES)
    fast = None
    if not no_model:
        model_dir = model or str(DEFAULT_MODEL)
        if model is None and not (Path(model_dir) / "model.json").exists():
            print(f"fraud: warning: no default model at {model_dir}; deciding with rules only", file=sys.stderr)
        else:
            fast = load_model(model_dir)
    return rule_set, fast
