"""Reading the files an operator hands to a command: key files, federation files,
passphrase files, sample complaints.

Each reader checks the whole file before anyone acts on it (readable, UTF-8,
JSON, then the shape a pydantic model describes) and turns every problem into
one SimpulError whose one-line message names the file and what is wrong with
it. ``error`` chooses the class: ConfigError for what configures the node,
ValidationError (the default) for other input.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError as PydanticError

from node.errors import SimpulError, ValidationError

M = TypeVar("M", bound=BaseModel)


def first_error(exc: PydanticError) -> str:
    """The first problem pydantic found, as ``where: what``."""
    err = exc.errors()[0]
    if err["type"] == "model_type":
        what = "must be a JSON object"
    elif err["type"] == "list_type":
        what = "must be a JSON list"
    else:
        what = err["msg"]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {what}" if where else what


def read_text(path: str | Path, what: str, error: type[SimpulError] = ValidationError) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what}: {path} is not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise error(f"{what}: cannot read {path}: {exc.strerror or exc}") from exc


def parse(model: type[M], data: object, where: str, error: type[SimpulError] = ValidationError) -> M:
    try:
        return model.model_validate(data)
    except PydanticError as exc:
        raise error(f"{where}: {first_error(exc)}") from exc


def read_json(path: str | Path, what: str, model: type[M], error: type[SimpulError] = ValidationError) -> M:
    """A JSON document that ``model`` accepts."""
    text = read_text(path, what, error)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise error(f"{what}: {path} is not valid JSON: {exc}") from exc
    return parse(model, data, f"{what}: {path}", error)


def read_jsonl(path: str | Path, what: str, model: type[M], error: type[SimpulError] = ValidationError) -> list[M]:
    """One JSON document per line, each one that ``model`` accepts; blank lines are skipped."""
    items = []
    for number, line in enumerate(read_text(path, what, error).splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise error(f"{what}: {path} line {number} is not valid JSON: {exc}") from exc
        items.append(parse(model, data, f"{what}: {path} line {number}", error))
    return items
