"""A loopback stand-in for Grafana's HTTP API, for `tunepipe grafana push` tests.

It answers the requests push makes the way Grafana documents them (folders, dashboards by uid,
datasources by uid), holds what was uploaded, enforces the auth header and the request bodies,
and answers Grafana's conflicts: 409 for a folder uid or datasource name taken, 412 for a
dashboard that exists when `overwrite` is not set, 401 without valid credentials.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

from werkzeug import Request, Response


@dataclass
class FakeGrafana:
    token: str = "glsa_test"
    basic: tuple[str, str] = ("admin", "secret")
    folders: dict[str, dict] = field(default_factory=dict)
    dashboards: dict[str, dict] = field(default_factory=dict)  # uid -> {dashboard, folderUid}
    datasources: dict[str, dict] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)  # "POST /api/..." of every change
    unexpected: list[str] = field(default_factory=list)
    _ids: int = 0

    def handle(self, request: Request) -> Response:
        if not self._authorized(request.headers.get("Authorization", "")):
            return _json({"message": "Unauthorized"}, 401)
        route = f"{request.method} {request.path}"
        for pattern, method in self._routes():
            found = re.fullmatch(pattern, route)
            if found:
                if request.method in ("POST", "PUT"):
                    if request.mimetype != "application/json":
                        return _json({"message": "bad request data"}, 400)
                    self.writes.append(route)
                    return method(request.get_json(), *found.groups())
                return method(*found.groups())
        self.unexpected.append(route)
        return _json({"message": "Not found"}, 404)

    def _authorized(self, header: str) -> bool:
        if header == f"Bearer {self.token}":
            return True
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return (user, password) == self.basic
        return False

    def _routes(self) -> list[tuple[str, Any]]:
        return [
            (r"GET /api/folders/([^/]+)", self.get_folder),
            (r"POST /api/folders", self.create_folder),
            (r"GET /api/dashboards/uid/([^/]+)", self.get_dashboard),
            (r"POST /api/dashboards/db", self.save_dashboard),
            (r"GET /api/datasources/uid/([^/]+)", self.get_datasource),
            (r"POST /api/datasources", self.create_datasource),
            (r"PUT /api/datasources/uid/([^/]+)", self.update_datasource),
        ]

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def get_folder(self, uid: str) -> Response:
        if uid not in self.folders:
            return _json({"message": "folder not found", "status": "not-found"}, 404)
        return _json(self.folders[uid])

    def create_folder(self, body: dict) -> Response:
        if not body.get("title"):
            return _json({"message": "folder title cannot be empty"}, 400)
        uid = body.get("uid") or f"f{self._ids}"
        if uid in self.folders:
            return _json({"message": "a folder with the same uid already exists"}, 409)
        if any(f["title"] == body["title"] for f in self.folders.values()):
            return _json({"message": "a folder with the same name already exists"}, 409)
        self.folders[uid] = {"id": self._next_id(), "uid": uid, "title": body["title"]}
        return _json(self.folders[uid])

    def get_dashboard(self, uid: str) -> Response:
        if uid not in self.dashboards:
            return _json({"message": "Dashboard not found"}, 404)
        stored = self.dashboards[uid]
        meta = {"folderUid": stored["folderUid"], "slug": uid, "canSave": True}
        return _json({"dashboard": stored["dashboard"], "meta": meta})

    def save_dashboard(self, body: dict) -> Response:
        board, folder = body.get("dashboard"), body.get("folderUid", "")
        if not isinstance(board, dict) or not board.get("title"):
            return _json({"message": "Dashboard title cannot be empty"}, 400)
        if folder and folder not in self.folders:
            return _json({"message": "folder not found", "status": "not-found"}, 400)
        uid = board.get("uid") or f"d{self._ids}"
        existing = self.dashboards.get(uid)
        if existing and not body.get("overwrite"):
            return _json({"message": "version-mismatch", "status": "version-mismatch"}, 412)
        taken = [
            u
            for u, d in self.dashboards.items()
            if u != uid and d["folderUid"] == folder and d["dashboard"]["title"] == board["title"]
        ]
        if taken and not body.get("overwrite"):
            return _json({"message": "name-exists", "status": "name-exists"}, 412)
        version = existing["dashboard"]["version"] + 1 if existing else 1
        dash_id = existing["dashboard"]["id"] if existing else self._next_id()
        stored = {**board, "uid": uid, "id": dash_id, "version": version}
        self.dashboards[uid] = {"dashboard": stored, "folderUid": folder}
        return _json({"id": dash_id, "uid": uid, "status": "success", "version": version})

    def get_datasource(self, uid: str) -> Response:
        if uid not in self.datasources:
            return _json({"message": "Data source not found"}, 404)
        return _json(self.datasources[uid])

    def create_datasource(self, body: dict) -> Response:
        missing = [k for k in ("name", "type", "access") if not body.get(k)]
        if missing:
            return _json({"message": f"missing {missing}"}, 400)
        if any(d["name"] == body["name"] for d in self.datasources.values()):
            return _json({"message": "data source with the same name already exists"}, 409)
        uid = body.get("uid") or f"ds{self._ids}"
        if uid in self.datasources:
            return _json({"message": "data source with the same uid already exists"}, 409)
        stored = {"id": self._next_id(), "orgId": 1, "readOnly": False, **body, "uid": uid}
        self.datasources[uid] = stored
        return _json({"datasource": stored, "id": stored["id"], "message": "Datasource added"})

    def update_datasource(self, body: dict, uid: str) -> Response:
        if uid not in self.datasources:
            return _json({"message": "Data source not found"}, 404)
        stored = {**self.datasources[uid], **body, "uid": uid}
        self.datasources[uid] = stored
        return _json({"datasource": stored, "message": "Datasource updated"})


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")
