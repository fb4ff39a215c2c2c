"""HAR 1.2's structure (http://www.softwareishard.com/blog/har-12-spec/), checked field by field."""

from __future__ import annotations

from datetime import datetime
from typing import Any

NUMBER = (int, float)


def _fields(obj: Any, where: str, spec: dict[str, type | tuple[type, ...]]) -> None:
    assert isinstance(obj, dict), f"{where} is not an object"
    for name, kind in spec.items():
        assert name in obj, f"{where}.{name} is missing"
        value = obj[name]
        assert isinstance(value, kind) and not (
            kind in (int, NUMBER) and isinstance(value, bool)
        ), f"{where}.{name} is {type(value).__name__}, not {kind}"


def _pairs(items: Any, where: str) -> None:
    assert isinstance(items, list), f"{where} is not an array"
    for i, item in enumerate(items):
        _fields(item, f"{where}[{i}]", {"name": str, "value": str})


def check_har(har: Any) -> None:
    """Raise AssertionError naming the first field that breaks HAR 1.2."""
    _fields(har, "har", {"log": dict})
    log = har["log"]
    _fields(log, "log", {"version": str, "creator": dict, "entries": list})
    assert log["version"] == "1.2"
    _fields(log["creator"], "log.creator", {"name": str, "version": str})
    for i, entry in enumerate(log["entries"]):
        at = f"entries[{i}]"
        _fields(entry, at, {
            "startedDateTime": str, "time": NUMBER, "request": dict, "response": dict,
            "cache": dict, "timings": dict,
        })  # fmt: skip
        datetime.fromisoformat(entry["startedDateTime"].replace("Z", "+00:00"))
        req = entry["request"]
        _fields(req, f"{at}.request", {
            "method": str, "url": str, "httpVersion": str, "cookies": list, "headers": list,
            "queryString": list, "headersSize": int, "bodySize": int,
        })  # fmt: skip
        _pairs(req["headers"], f"{at}.request.headers")
        _pairs(req["queryString"], f"{at}.request.queryString")
        _pairs(req["cookies"], f"{at}.request.cookies")
        if "postData" in req:
            _fields(req["postData"], f"{at}.request.postData",
                    {"mimeType": str, "params": list, "text": str})  # fmt: skip
        resp = entry["response"]
        _fields(resp, f"{at}.response", {
            "status": int, "statusText": str, "httpVersion": str, "cookies": list,
            "headers": list, "content": dict, "redirectURL": str, "headersSize": int,
            "bodySize": int,
        })  # fmt: skip
        _pairs(resp["headers"], f"{at}.response.headers")
        _fields(resp["content"], f"{at}.response.content", {"size": int, "mimeType": str})
        if "encoding" in resp["content"]:
            assert resp["content"]["encoding"] == "base64"
        timings = entry["timings"]
        _fields(timings, f"{at}.timings", {"send": NUMBER, "wait": NUMBER, "receive": NUMBER})
        parts = [v for k, v in timings.items() if k != "comment" and v != -1]
        assert all(v >= 0 for v in parts), f"{at}.timings has negative values"
        assert abs(sum(parts) - entry["time"]) < 0.01, f"{at}.time is not the sum of its timings"
