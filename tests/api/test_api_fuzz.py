"""Property-based fuzzing of the sync API from its own OpenAPI document.

Schemathesis reads ``GET /.drivegate/api/v1/openapi.json`` from a real server (the
``dav_url`` fixture: both backends, alice and bob) and sends what the document
allows (positive) and what it forbids (negative) to every operation, then
checks each answer: no 5xx, a documented status, the documented content type,
a body that fits the documented schema, and every request the document
forbids refused. The stateful test follows the document's links (a folder
made, then listed, moved, deleted; a file committed, then read, patched,
restored) so the fuzzer reaches real nodes, not just 404s, and asks as bob
for every node alice is answered (it must be "not found" to him).

Bounded and reproducible: a few dozen examples per operation, derandomized
(the same requests on every run), no example database.

Schemathesis' pytest integration (``schemathesis.pytest.from_fixture``) does
not run under pytest 9.2 (it sets ``Function._nodeid``, which pytest 9 no
longer has), so the operations are driven through its Python API with
Hypothesis directly.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Flaky
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from core import Drive
from core.groups import MAX_NAMES
from davserver.api.app import API_VERSION, PREFIX
from davserver.api.models import MAX_INT
from davserver.api.routes import routes
from davserver.api.spec import openapi_document
from tests.conftest import ALICE

BOB = ("bob", "bob-password")
REFUSALS = (400, 401, 403, 404, 405, 409, 413, 414, 415, 429)
NAME = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"  # of users and groups

EXAMPLES = 40
FOLDER_TAKERS = {"POST /mkdir", "POST /commit", "POST /move"}
SHARE_GROUP = "fuzzers"  # what the fuzzer's shares go to: an empty group
# The checks: all of Schemathesis' response checks but three. ``ignored_auth``
# re-sends requests with wrong passwords, which trips the login throttle (429
# for the rest of the run; tests/api/test_api_bad_input.py covers logins);
# ``positive_data_acceptance`` wants a 2xx for any well-formed request, but
# random ids are rightly 404.
CONFIG: dict[str, Any] = {
    "auth": {"openapi": {"basic": {"username": ALICE[0], "password": ALICE[1]}}},
    "generation": {"deterministic": True, "with-security-parameters": False},
    "checks": {
        "ignored_auth": {"enabled": False},
        "positive_data_acceptance": {"enabled": False},
        # DELETE moves a node to the trash, and its manifest answers on purpose
        # (docs/sync-api.md: a client holding the file open reads on).
        "use_after_free": {"enabled": False},
        # A request line over 64 KiB is refused by the HTTP server (414); alice is
        # no administrator, so the admin operations refuse her first (403).
        "negative_data_rejection": {"expected-statuses": [str(status) for status in REFUSALS]},
    },
}
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(autouse=True)
def share_group(drive: Drive) -> None:
    drive.add_group(SHARE_GROUP)


def load_schema(dav_url: str, mode: str = "all") -> Any:
    config = schemathesis.Config.from_dict(
        {**CONFIG, "generation": {**CONFIG["generation"], "mode": mode}}
    )
    return schemathesis.openapi.from_url(dav_url + ".drivegate/api/v1/openapi.json", config=config)


class Steering:
    """Turns some positive requests into ones that get further than a refusal:
    a chunk PUT named by its bytes' hash (a random name would only ever be
    ``hash_mismatch``); a commit of chunks uploaded before, with their lengths
    and the size that adds up; a mkdir, commit or move into a folder that
    exists (the root, or one made before), so files and folders get made and
    their links followed; and a long-poll of at most 0.1 s (the document
    allows 60, which would stall the run)."""

    def __init__(self, api: httpx.Client) -> None:
        self.chunks: dict[str, int] = {}
        self.folders: list[int] = [api.get("/me").json()["root_id"]]
        for n in range(3):  # a few chunks to commit before the fuzzer has put any
            self.add(api, f"chunk {n} for the fuzzer".encode() * (n + 1))

    def add(self, api: httpx.Client, data: bytes) -> None:
        name = hashlib.sha256(data).hexdigest()
        assert api.put(f"/chunks/{name}", content=data).status_code in (200, 201)
        self.chunks[name] = len(data)

    def steer(self, case: Any) -> None:
        if case.meta is None or case.meta.generation.mode is not GenerationMode.POSITIVE:
            return
        if isinstance(case.body, dict) and case.operation.label in FOLDER_TAKERS:
            self._into_a_folder(case.body)
        if case.operation.label == "GET /changes" and isinstance(case.query, dict):
            if isinstance(case.query.get("wait"), int | float):
                case.query["wait"] = min(case.query["wait"], 0.1)
        elif case.operation.label == "PUT /chunks/{hash}" and isinstance(case.body, bytes):
            if case.body and len(case.body) % 2 == 0:  # the odd ones stay wrong
                name = hashlib.sha256(case.body).hexdigest()
                case.path_parameters["hash"] = name
                self.chunks[name] = len(case.body)
        elif case.operation.label == "POST /commit" and isinstance(case.body, dict):
            self._known_chunks(case.body)
        elif case.operation.label == "POST /shares" and isinstance(case.body, dict):
            self._with_the_group(case.body)

    def _into_a_folder(self, body: dict[str, Any]) -> None:
        parent = body.get("parent_id")
        if isinstance(parent, int | float) and parent not in self.folders:
            body["parent_id"] = self.folders[int(parent) % len(self.folders)]
        elif parent is None and body.get("node_id") is None:  # a commit of neither shape
            body["parent_id"] = self.folders[-1]
            body.setdefault("name", "made by the fuzzer")
            if body["name"] is None:
                body["name"] = "made by the fuzzer"

    def _known_chunks(self, body: dict[str, Any]) -> None:
        entries = body.get("chunks")
        if not isinstance(entries, list):
            return
        known = sorted(self.chunks.items())
        chosen = [known[i % len(known)] for i in range(len(entries))]
        body["chunks"] = [{"hash": name, "length": length} for name, length in chosen]
        body["size"] = sum(length for _, length in chosen)
        body.pop("splice", None)

    def _with_the_group(self, body: dict[str, Any]) -> None:
        """A share of a folder made before with ``SHARE_GROUP`` (no members: bob gets
        nothing), so the links of a grant are followed."""
        node = body.get("node_id")
        if isinstance(node, int | float) and node not in self.folders[1:] and self.folders[1:]:
            body["node_id"] = self.folders[1:][int(node) % len(self.folders[1:])]
        body.pop("user", None)
        body["group"] = SHARE_GROUP

    def observe(self, response: Any) -> None:
        """Remember the folders made."""
        node = node_answered(response)
        if node is not None and node["kind"] == "folder" and node["id"] not in self.folders:
            self.folders.append(node["id"])


def node_answered(response: Any) -> dict[str, Any] | None:
    """The node a success answers, if it answers one."""
    if response.status_code not in (200, 201):
        return None
    if "json" not in response.headers.get("content-type", [""])[0]:  # lower-case keys
        return None
    node = response.json()
    if isinstance(node, dict) and isinstance(node.get("id"), int) and "kind" in node:
        return node
    return None


def _negatable(operation: Any) -> bool:
    """Whether the operation has anything a request can get wrong."""
    return bool(list(operation.iter_parameters())) or bool(operation.body)


def test_every_operation_answers_as_documented(
    api: httpx.Client, dav_url: str, subtests: pytest.Subtests
) -> None:
    schema = load_schema(dav_url)
    steering = Steering(api)
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.NEGATIVE and not _negatable(operation):
                continue

            @FUZZ
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case: Any) -> None:
                steering.steer(case)
                steering.observe(case.call_and_validate())

            with subtests.test(operation=operation.label, mode=mode.value):
                fuzz()


# No shrinking: a sequence replayed against a server whose state has moved on
# draws differently (Hypothesis would report a flaky strategy, not the failure).
STATEFUL = settings(
    phases=[Phase.explicit, Phase.generate],
    max_examples=EXAMPLES,
    stateful_step_count=8,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def test_sequences_that_follow_the_links_answer_as_documented(
    api: httpx.Client, dav_url: str
) -> None:
    # Positive only: the stateless test sends the negative requests, and here
    # they would mostly end the sequences the links are there to build.
    schema = load_schema(dav_url, "positive")
    steering = Steering(api)
    answered: Counter[tuple[str, int]] = Counter()
    failures: dict[str, str] = {}
    bob = httpx.Client(base_url=dav_url + ".drivegate/api/v1", auth=BOB, timeout=60)

    def hidden_from_bob(response: Any, case: Any) -> None:
        """Every node alice is answered is "not found" for bob."""
        node = node_answered(response)
        if node is None:
            return
        for path in (f"/nodes/{node['id']}", f"/nodes/{node['id']}/manifest"):
            seen = bob.get(path)
            if seen.status_code != 404 or seen.json()["error"]["code"] != "not_found":
                failures.setdefault(f"bob GET {path}", f"{seen.status_code} {seen.text[:500]}")
            answered["bob GET", seen.status_code] += 1

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Any) -> None:
            steering.steer(case)

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            steering.observe(response)
            answered[case.operation.label, response.status_code] += 1
            hidden_from_bob(response, case)

        def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
            # Failures are collected, not raised: Hypothesis would replay the
            # sequence to shrink it, against a server whose state has moved on.
            try:
                super().validate_response(response, case, *args, **kwargs)
            except FailureGroup as found:
                for failure in found.exceptions:
                    key = f"{case.operation.label}: {failure.title}"
                    failures.setdefault(key, str(found))

    # Hypothesis stops with Flaky when a draw that depended on the server's
    # answers comes out differently from an earlier sequence's (as Schemathesis'
    # own runner does, this ends the exploration; what ran was checked).
    with bob, contextlib.suppress(Flaky):
        Machine.run(settings=STATEFUL)
    assert not failures, "\n\n".join(failures.values())
    folders = answered["POST /mkdir", 201]
    files = answered["POST /commit", 201] + answered["POST /commit", 200]
    assert folders and files, f"the sequences made no folder or committed no file: {answered}"
    followed = (
        answered["GET /nodes/{node_id}/children", 200] + answered["GET /nodes/{node_id}", 200]
    )
    assert followed, f"no link from a new node was followed: {answered}"
    assert answered["bob GET", 404], "bob was never shown alice's nodes' ids"


def test_the_document_is_as_tight_as_the_server(drive: Drive) -> None:
    document = openapi_document(routes(drive, 1), PREFIX, API_VERSION)
    schemas = document["components"]["schemas"]
    ids = {"type": "integer", "minimum": 1, "maximum": MAX_INT}
    for path, item in document["paths"].items():
        for method, described in item.items():
            for parameter in described.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in ("node_id", "number"):
                    assert ids.items() <= parameter["schema"].items(), (path, parameter)
                elif parameter["in"] == "path" and parameter["name"] in ("group", "user"):
                    assert parameter["schema"]["pattern"] == NAME, (path, parameter)
            statuses = set(described["responses"])
            assert {"400", "414"} <= statuses, (method, path)
            if described.get("security") != []:  # logged in
                assert {"401", "429", "503"} <= statuses, (method, path)
            if "requestBody" in described:
                assert "413" in statuses, (method, path)
    chunk = document["paths"]["/chunks/{hash}"]["get"]["parameters"][0]["schema"]
    assert chunk["pattern"] == "^[0-9a-f]{64}$"
    assert schemas["GroupIn"]["properties"]["name"]["pattern"] == NAME
    assert schemas["MembersIn"]["properties"]["users"]["maxItems"] == MAX_NAMES
    assert schemas["ChunkIn"]["properties"]["hash"]["pattern"] == chunk["pattern"]
    assert schemas["ChunkIn"]["properties"]["length"]["maximum"] == 4 * 1024 * 1024
    assert len(schemas["CommitIn"]["oneOf"]) == 2
    assert len(schemas["ShareIn"]["oneOf"]) == 2
    bodies = [name for name in schemas if name.endswith(("In", "Op"))]
    assert len(bodies) >= 10
    for name in bodies:
        assert schemas[name]["additionalProperties"] is False, name
    links = document["paths"]["/mkdir"]["post"]["responses"]["201"]["links"]
    assert links["getChildren"] == {
        "operationId": "getChildren",
        "parameters": {"path.node_id": "$response.body#/id"},
    }
