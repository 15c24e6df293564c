"""docs/api.md and docs/openapi.yaml stay true: each lists exactly the API's routes, and every
route in docs/api.md comes with a curl example."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
METHODS = ("get", "post", "patch", "put", "delete")


def app_routes(app) -> set[tuple[str, str]]:
    """(METHOD, /path/{arg}) for every route of the api blueprint, relative to /api/v1."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule).removeprefix("/api/v1")
            routes |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def openapi_routes() -> set[tuple[str, str]]:
    """The operations under `paths:` (read by indentation: the file is written in block style,
    two spaces per level, and the project has no YAML parser)."""
    text = (DOCS / "openapi.yaml").read_text()
    paths_section = text[text.index("\npaths:\n"):text.index("\ncomponents:\n")]
    routes, path = set(), None
    for line in paths_section.splitlines():
        if match := re.fullmatch(r"  (/\S*):", line):
            path = match.group(1)
        elif match := re.fullmatch(rf"    ({'|'.join(METHODS)}):", line):
            routes.add((match.group(1).upper(), path))
    return routes


def documented_sections() -> dict[tuple[str, str], str]:
    """Each `### METHOD /api/v1/path` heading of docs/api.md and the text under it."""
    text = (DOCS / "api.md").read_text()
    parts = re.split(r"^### ([A-Z]+) /api/v1(\S*)\n", text, flags=re.MULTILINE)
    return {(method, path): body for method, path, body in zip(parts[1::3], parts[2::3],
                                                                parts[3::3], strict=True)}


def test_openapi_lists_exactly_the_api_routes(app):
    assert openapi_routes() == app_routes(app)


def test_api_md_documents_exactly_the_api_routes(app):
    assert set(documented_sections()) == app_routes(app)


def test_every_documented_route_has_a_curl_example_with_its_method():
    for (method, path), body in documented_sections().items():
        example = re.search(r"```sh\n(.*?)```", body, flags=re.DOTALL)
        assert example and "curl" in example.group(1), f"{method} {path} has no curl example"
        command = example.group(1)
        assert 'Authorization: Bearer $DISCUX_TOKEN' in command
        if method == "GET":
            assert "-X " not in command
        elif method == "POST":
            assert "-d " in command or "-X POST" in command, f"{method} {path}"
        else:
            assert f"-X {method}" in command, f"{method} {path}"
        last_segment = path.rstrip("/").split("/")[-1]
        if not last_segment.startswith("{"):
            assert last_segment in command, f"{method} {path}: the example calls another path"
