"""HTTP helpers: Canvas response bodies, errors, parameter parsing."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request, Response

JSON_MIMETYPE = "application/json"
BEARER_CHALLENGE = 'Bearer realm="canvas-lms"'
OAUTH_CHALLENGE = "Canvas OAuth 2.0"

NOT_FOUND_BODY = {"errors": [{"message": "The specified resource does not exist."}]}
UNAUTHORIZED_BODY = {
    "status": "unauthorized",
    "errors": [{"message": "user not authorized to perform that action"}],
}

_TRUE = {"1", "true", "t", "yes", "y", "on"}


class HttpError(Exception):
    """Raised by handlers to answer with ``response``."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None, *, string_ids: bool = False
) -> Response:
    body = json.dumps(stringify_ids(data) if string_ids else data, ensure_ascii=False)
    response = Response(body, status=status, content_type=f"{JSON_MIMETYPE}; charset=utf-8")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def html_response(title: str, body_html: str, status: int = 200) -> Response:
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n{body_html}\n</body></html>\n"
    )
    return Response(page, status=status, content_type="text/html; charset=utf-8")


def not_found() -> HttpError:
    return HttpError(json_response(NOT_FOUND_BODY, 404))


def unauthorized() -> HttpError:
    return HttpError(json_response(UNAUTHORIZED_BODY, 401))


def bad_request(body: Any) -> HttpError:
    return HttpError(json_response(body, 400))


def sim_error(message: str, status: int = 400) -> HttpError:
    """An error of the simulator's own ``/_sim/*`` endpoints (not Canvas's shape): ``{"error": message}``."""
    return HttpError(json_response({"error": message}, status))


def sim_json_body(request: Request) -> dict[str, Any]:
    """A ``/_sim/*`` request's JSON object body; an empty body is an empty object."""
    if not request.get_data():
        return {}
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise sim_error("expected a JSON object body")
    return body


def stringify_ids(data: Any) -> Any:
    """``Accept: application/json+canvas-string-ids``: every integer id field becomes a string."""
    if isinstance(data, list):
        return [stringify_ids(item) for item in data]
    if isinstance(data, dict):
        result: dict[str, Any] = {}
        for key, value in data.items():
            if (
                (key == "id" or key.endswith("_id"))
                and isinstance(value, int)
                and not isinstance(value, bool)
            ):
                result[key] = str(value)
            elif key.endswith("_ids") and isinstance(value, list):
                result[key] = [str(v) if isinstance(v, int) else v for v in value]
            else:
                result[key] = stringify_ids(value)
        return result
    return data


def truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value).strip().lower() in _TRUE


def list_param(args: MultiDict[str, str], name: str) -> list[str]:
    """Rails-style array parameter: ``name[]=a&name[]=b`` (a plain ``name=a`` counts as one element)."""
    return [value for value in (*args.getlist(f"{name}[]"), *args.getlist(name)) if value != ""]


_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT_RE = re.compile(r"\[([^\[\]]*)\]")


def nested_params(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Turn Rails-style form keys (``assignment[name]``, ``assignment[types][]``) into nested dicts."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY_RE.match(key)
        if match is None:
            root[key] = value
            continue
        path = [match.group(1), *_SEGMENT_RE.findall(match.group(2))]
        node = root
        for index, segment in enumerate(path):
            last = index == len(path) - 1
            next_is_list = not last and path[index + 1] == ""
            if segment == "":
                continue
            if last:
                node[segment] = value
            elif next_is_list:
                existing = node.get(segment)
                if not isinstance(existing, list):
                    existing = []
                    node[segment] = existing
                existing.append(value)
                break
            else:
                child = node.get(segment)
                if not isinstance(child, dict):
                    child = {}
                    node[segment] = child
                node = child
    return root


def request_params(request: Request) -> dict[str, Any]:
    """Query string, form body and JSON body merged into one nested dict (later sources win)."""
    params = nested_params(request.args.items(multi=True))
    if request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict):  # nested objects, or Rails-style flat keys ("assignment[name]")
            _deep_merge(params, nested_params((str(k), v) for k, v in body.items()))
    else:
        _deep_merge(params, nested_params(request.form.items(multi=True)))
    return params


def _deep_merge(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = value
