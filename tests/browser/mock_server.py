#!/usr/bin/env python3
"""A stand-in for the gateway's web console, for working on the pages without the gateway.

It serves static/ and answers the JSON API of WEB-API.md with canned, slowly changing data: a
few devices whose values change every half second (pushed as SSE `value` events), a history
synthesised from the clock (downsampled into min/max/avg buckets like the real one), commands
that go queued -> sent -> acknowledged, sessions with a cookie and a CSRF token, HTTP Basic, the
Origin / Content-Type checks and the same security headers as the gateway. Only the standard
library; 127.0.0.1 only. Not a test of the gateway: the browser driver (console.py) runs against
this and, unchanged, against the real binary.

    python3 tests/browser/mock_server.py --port 8080 --user opcua-user --password demo-password
"""

import argparse
import base64
import hashlib
import hmac
import json
import math
import mimetypes
import queue
import random
import secrets
import shutil
import sys
import threading
import time
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from mock_config import ConfigStore, Refusal

STATIC = Path(__file__).resolve().parents[2] / "static"
CSP = "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
PAGES = {"index.html", "devices.html", "device.html", "commands.html", "events.html", "config.html", "certificates.html"}
SAMPLE_PERIOD = 10  # seconds between synthetic history rows, as a device reporting every 10 s
IDLE_SECS = 1800
ABSOLUTE_SECS = 8 * 3600
STARTED = time.time()


def iso(t):
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text, default):
    if text is None or text == "":
        return default
    try:
        return float(text)
    except ValueError:
        pass
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def synthetic(metric_index, t):
    """The value a synthetic metric had at time t: a daily wave plus a faster ripple."""
    return 20 + 5 * math.sin(2 * math.pi * t / 86400 + metric_index) + 0.8 * math.sin(t / 300 + metric_index)


class Gateway:
    """The mock's state; every method runs under `lock`."""

    def __init__(self, user, password, device_count, editing_reason=None):
        self.lock = threading.RLock()
        self.user = user
        self.password = password
        self.sessions = {}  # sha256(token) -> {"user", "csrf", "created", "last"}
        self.subscribers = []  # [(session hash or None, queue)]
        self.audit = []
        self.commands = []
        self.idempotency = {}
        self.next_command_id = 1
        self.applications = self.build_devices(device_count)
        self.config = ConfigStore(self.applications, editing_reason)

    def build_devices(self, count):
        now = time.time()
        env_metrics = [("temperature", "Float", "°C"), ("humidity", "Float", "%"), ("battery", "Int", "%"), ("door_open", "Bool", None)]
        pump_metrics = [("pressure", "Float", "bar"), ("flow", "Float", "m³/h"), ("running", "Bool", None), ("status", "String", None)]
        pump_commands = [
            {"command_name": "setpoint", "command_type": "Float", "command_port": 10, "command_confirmed": True, "command_min": 0.0, "command_max": 100.0},
            {"command_name": "enable", "command_type": "Bool", "command_port": 11, "command_confirmed": True, "command_min": None, "command_max": None},
            {"command_name": "speed", "command_type": "Int", "command_port": 12, "command_confirmed": False, "command_min": 0, "command_max": 3000},
            {"command_name": "label", "command_type": "String", "command_port": 13, "command_confirmed": False, "command_min": None, "command_max": None},
        ]

        def metric(index, name, kind, unit, quality="good"):
            value = {"Float": round(synthetic(index, now), 2), "Int": 87, "Bool": False, "String": "idle"}[kind]
            if quality == "waiting":
                return {"metric_name": name, "metric_type": kind, "unit": unit, "value": None, "timestamp": None, "received": None, "quality": "waiting"}
            return {"metric_name": name, "metric_type": kind, "unit": unit, "value": value, "timestamp": iso(now - 5), "received": iso(now - 4), "quality": quality}

        sensors = []
        for i in range(max(1, count - 2)):
            quality = "uncertain" if i == 1 else "good"
            metrics = [metric(j + i, n, k, u, quality if j == 0 else "good") for j, (n, k, u) in enumerate(env_metrics)]
            sensors.append({"device_id": f"env-{i + 1:02d}", "device_name": f"Cold room {i + 1}", "metrics": metrics, "commands": []})
        pumps = [
            {"device_id": "pump-07", "device_name": "Pump 7", "metrics": [metric(j + 7, n, k, u) for j, (n, k, u) in enumerate(pump_metrics)], "commands": pump_commands},
            {"device_id": "pump-08", "device_name": "Pump 8 (spare)", "metrics": [metric(j, n, k, u, "waiting") for j, (n, k, u) in enumerate(pump_metrics)], "commands": pump_commands},
        ]
        apps = [
            {"application_id": "a1f3c2d4-0000-4000-8000-000000000001", "application_name": "Cold rooms", "devices": sensors},
            {"application_id": "a1f3c2d4-0000-4000-8000-000000000002", "application_name": "Pumping station", "devices": pumps},
        ]
        for app in apps:
            for device in app["devices"]:
                self.refresh_device(device)
        return apps

    @staticmethod
    def refresh_device(device):
        rank = {"good": 0, "waiting": 1, "uncertain": 2, "bad": 3}
        device["quality"] = max((m["quality"] for m in device["metrics"]), key=lambda q: rank[q], default="good")
        received = [m["received"] for m in device["metrics"] if m["received"]]
        device["last_seen"] = max(received) if received else None

    def find_device(self, device_id):
        for app in self.applications:
            for device in app["devices"]:
                if device["device_id"] == device_id:
                    return app, device
        return None, None

    def record(self, event, source_ip, user, detail):
        self.audit.insert(0, {"time": iso(time.time()), "event": event, "source_ip": source_ip, "user": user, "detail": detail})
        del self.audit[1000:]

    def publish(self, kind, data, only_session=None):
        for session_hash, q in list(self.subscribers):
            if only_session is None or session_hash == only_session:
                q.put((kind, data))

    def tick(self):
        """One simulated uplink: a numeric metric of a live device moves."""
        with self.lock:
            candidates = [(d, m, i) for app in self.applications for d in app["devices"] for i, m in enumerate(d["metrics"]) if m["quality"] != "waiting"]
            if not candidates:
                return
            device, metric, index = random.choice(candidates)
            now = time.time()
            if metric["metric_type"] == "Float":
                metric["value"] = round(synthetic(index, now) + random.uniform(-0.3, 0.3), 2)
            elif metric["metric_type"] == "Int":
                metric["value"] = max(0, min(100, int(metric["value"]) + random.choice([-1, 0, 1])))
            elif metric["metric_type"] == "Bool":
                metric["value"] = not metric["value"]
            else:
                metric["value"] = random.choice(["idle", "pumping", "priming"])
            metric["timestamp"] = iso(now - 0.2)
            metric["received"] = iso(now)
            self.refresh_device(device)
            self.publish("value", {"device_id": device["device_id"], "metric": metric["metric_name"], "value": metric["value"], "timestamp": metric["timestamp"], "received": metric["received"], "quality": metric["quality"]})

    def sync_live(self):
        """The live view follows the edited tree: values kept for unchanged metrics, new ones waiting."""
        old = {(d["device_id"], m["metric_name"]): m for app in self.applications for d in app["devices"] for m in d["metrics"]}
        apps = []
        for app in self.config.tree:
            devices = []
            for d in app["device"]:
                metrics = []
                for m in d["read_metric"]:
                    prev = old.get((d["device_id"], m["metric_name"]))
                    if prev and prev["metric_type"] == m["metric_type"]:
                        metrics.append(dict(prev, unit=m.get("metric_unit")))
                    else:
                        metrics.append({"metric_name": m["metric_name"], "metric_type": m["metric_type"], "unit": m.get("metric_unit"), "value": None, "timestamp": None, "received": None, "quality": "waiting"})
                commands = [dict(c, command_min=c.get("command_min"), command_max=c.get("command_max")) for c in d["command"]]
                device = {"device_id": d["device_id"], "device_name": d["device_name"], "metrics": metrics, "commands": commands}
                self.refresh_device(device)
                devices.append(device)
            apps.append({"application_id": app["application_id"], "application_name": app["application_name"], "devices": devices})
        self.applications = apps

    def advance_command(self, command_id, state, detail):
        with self.lock:
            for command in self.commands:
                if command["id"] == command_id:
                    command["state"] = state
                    command["detail"] = detail
                    command["updated"] = iso(time.time())
                    self.publish("command", dict(command))


class Handler(BaseHTTPRequestHandler):
    server_version = "opcgw-mock"
    protocol_version = "HTTP/1.1"

    @property
    def gw(self):
        return self.server.gateway

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("mock: " + (fmt % args) + "\n")

    # -- responses ---------------------------------------------------------------------------

    def common_headers(self):
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")

    def reply(self, status, body=None, headers=()):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.common_headers()
        self.send_header("Cache-Control", "no-store")
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def error(self, status, message, field=None, headers=()):
        body = {"error": message}
        if field:
            body["field"] = field
        self.reply(status, body, headers)

    # -- auth --------------------------------------------------------------------------------

    def cookie_token(self):
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "opcgw_session" and value:
                return value
        return None

    def session(self):
        """(kind, session hash or None, session or None): kind is "cookie", "basic" or None."""
        token = self.cookie_token()
        if token:
            digest = hashlib.sha256(token.encode()).hexdigest()
            with self.gw.lock:
                session = self.gw.sessions.get(digest)
                now = time.time()
                if session and (now - session["last"] > IDLE_SECS or now - session["created"] > ABSOLUTE_SECS):
                    del self.gw.sessions[digest]
                    self.gw.record("web_session_expired", self.client_address[0], session["user"], "")
                    session = None
                if session:
                    session["last"] = now
                    return "cookie", digest, session
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except Exception:
                return None, None, None
            if self.credentials_ok(user, password):
                return "basic", None, {"user": user}
        return None, None, None

    def credentials_ok(self, user, password):
        return hmac.compare_digest(user.encode(), self.gw.user.encode()) & hmac.compare_digest(password.encode(), self.gw.password.encode())

    def unauthorized(self):
        # The console's own scripts say X-Requested-With: no Basic challenge, so no browser dialog.
        headers = [] if self.headers.get("X-Requested-With") else [("WWW-Authenticate", 'Basic realm="opcgw"')]
        self.error(401, "authentication required", headers=headers)

    def mutation_refused(self, kind, session):
        """004's CSRF rules; returns True when it answered."""
        origins = self.headers.get_all("Origin") or []
        if len(origins) > 1:
            self.error(403, "several Origin headers")
            return True
        allowed = {f"http://{self.headers.get('Host')}"}
        if origins and origins[0] not in allowed:
            self.error(403, "origin not allowed")
            return True
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            self.error(415, "Content-Type must be application/json")
            return True
        if kind == "cookie" and not hmac.compare_digest((self.headers.get("X-CSRF-Token") or "").encode(), session["csrf"].encode()):
            self.error(403, "missing or wrong X-CSRF-Token")
            return True
        return False

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > 65536:
            self.error(413, "request body too large")
            return None
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except ValueError:
            self.error(400, "the body is not JSON")
            return None

    # -- routing -----------------------------------------------------------------------------

    def do_GET(self):
        self.route("GET")

    def do_HEAD(self):
        self.route("HEAD")

    def do_POST(self):
        self.route("POST")

    def do_PUT(self):
        self.route("PUT")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, method):
        url = urlsplit(self.path)
        path = url.path
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if not path.startswith("/api/"):
            return self.static(path) if method in ("GET", "HEAD") else self.error(405, "method not allowed")
        if path == "/api/health":
            return self.reply(200, {"status": "ok"})
        if path == "/api/session" and method == "POST":
            return self.sign_in()
        kind, digest, session = self.session()
        if kind is None:
            return self.unauthorized()
        if method not in ("GET", "HEAD") and self.mutation_refused(kind, session):
            return None
        parts = [unquote(p) for p in path.split("/")[2:]]
        try:
            return self.api(method, parts, query, kind, digest, session)
        except (ValueError, KeyError) as error:
            return self.error(400, f"bad request: {error}")

    def api(self, method, parts, query, kind, digest, session):
        gw = self.gw
        if parts == ["session"] and method == "GET":
            if kind != "cookie":
                return self.error(401, "no session")
            return self.reply(200, {"user": session["user"], "csrf_token": session["csrf"], "expires_at": iso(session["created"] + ABSOLUTE_SECS)})
        if parts == ["session"] and method == "DELETE":
            with gw.lock:
                if digest:
                    gw.sessions.pop(digest, None)
                    gw.publish(None, None, only_session=digest)
                gw.record("web_logout", self.client_address[0], session["user"], "")
            return self.reply(204, None, [("Set-Cookie", "opcgw_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")])
        if parts == ["status"]:
            return self.reply(200, self.status())
        if parts == ["devices"]:
            with gw.lock:
                return self.reply(200, {"as_of": iso(time.time()), "stale_threshold_secs": 120, "bad_threshold_secs": 600, "applications": json.loads(json.dumps(gw.applications))})
        if len(parts) == 2 and parts[0] == "devices":
            with gw.lock:
                app, device = gw.find_device(parts[1])
                if device is None:
                    return self.error(404, "unknown device")
                return self.reply(200, dict(device, application_id=app["application_id"]))
        if len(parts) == 5 and parts[0] == "devices" and parts[2] == "metrics" and parts[4] == "history":
            return self.history(parts[1], parts[3], query)
        if len(parts) == 4 and parts[0] == "devices" and parts[2] == "commands" and method == "POST":
            return self.send_command(parts[1], parts[3], session)
        if parts == ["commands"]:
            limit = min(1000, int(query.get("limit", 100)))
            with gw.lock:
                rows = [c for c in gw.commands if query.get("device") in (None, "", c["device_id"]) and query.get("state") in (None, "", c["state"])]
                return self.reply(200, {"commands": [dict(c) for c in rows[:limit]]})
        if parts == ["audit"]:
            with gw.lock:
                return self.reply(200, {"events": list(gw.audit)})
        if parts == ["events"]:
            return self.events(digest)
        if parts and parts[0] in ("config", "applications", "certificates"):
            return self.config_api(method, parts, session)
        return self.error(404, "no such route")

    # -- configuration editing and client certificates (mock_config.py) -----------------------

    def config_api(self, method, parts, session):
        gw = self.gw
        body = None
        if method in ("POST", "PUT"):
            length = int(self.headers.get("Content-Length") or 0)
            if length > 65536:
                return self.error(413, "request body too large")
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                return self.reply(422, {"error": "the body is not JSON", "reason": "validation", "field": "$"})
        subject = "command" if "commands" in parts else "device" if "devices" in parts else "application"
        with gw.lock:
            try:
                if parts == ["config"] and method == "GET":
                    return self.reply(200, gw.config.view())
                if parts == ["config", "reload"] and method == "POST":
                    answer = gw.config.reload()
                    gw.record("config_reload_attempted", self.client_address[0], session["user"], f"trigger=web generation={answer['generation']}")
                    gw.publish("config", {"generation": answer["generation"]})
                    return self.reply(200, answer)
                if parts[0] == "certificates":
                    return self.certificate_api(method, parts[1:], session)
                if parts[0] != "applications":
                    return self.error(404, "no such route")
                if method == "GET":
                    return self.reply(200, gw.config.get(parts[1:]))
                allowed = {1: ("POST",), 2: ("PUT", "DELETE"), 3: ("POST",), 4: ("PUT", "DELETE"), 5: ("POST",), 6: ("PUT", "DELETE")}
                if method not in allowed.get(len(parts), ()) or (len(parts) >= 3 and parts[2] != "devices") or (len(parts) >= 5 and parts[4] != "commands"):
                    return self.error(405, "method not allowed")
                status, answer, location = gw.config.edit(method, parts[1:], body)
            except Refusal as refusal:
                if method not in ("GET", "HEAD") and parts[0] == "applications":
                    gw.record(f"{subject}_crud_rejected", self.client_address[0], session["user"], f"reason={refusal.body['reason']}")
                return self.reply(refusal.status, refusal.body)
            verb = {201: "created", 200: "updated", 204: "deleted"}[status]
            ids = " ".join(f"{k}={v}" for k, v in zip(("application_id", "device_id", "command_name"), [p for i, p in enumerate(parts[1:]) if i % 2 == 0]))
            gw.record(f"{subject}_{verb}", self.client_address[0], session["user"], f"{ids} generation={gw.config.generation}".strip())
            gw.sync_live()
            if self.headers.get("X-Mock-Silent") != "1":
                gw.publish("config", {"generation": gw.config.generation})
        return self.reply(status, answer, [("Location", location)] if location else [])

    def certificate_api(self, method, parts, session):
        store = self.gw.config
        if not parts and method == "GET":
            return self.reply(200, {"certificates": [dict(c) for c in store.certificates]})
        if len(parts) == 2 and method == "POST" and parts[1] in ("trust", "reject"):
            cert = store.move_certificate(parts[0], "trusted" if parts[1] == "trust" else "rejected")
            self.gw.record(f"pki_certificate_{cert['state']}", self.client_address[0], session["user"], f"thumbprint={cert['thumbprint']} subject={cert['subject']}")
            return self.reply(200, cert)
        if len(parts) == 1 and method == "DELETE":
            cert = store.certificate(parts[0])
            store.certificates.remove(cert)
            self.gw.record("pki_certificate_deleted", self.client_address[0], session["user"], f"thumbprint={cert['thumbprint']} subject={cert['subject']}")
            return self.reply(204, None)
        return self.error(405 if len(parts) in (1, 2) else 404, "no such route")

    def sign_in(self):
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return self.error(415, "Content-Type must be application/json")
        body = self.read_json()
        if body is None:
            return None
        user, password = str(body.get("user", "")), str(body.get("password", ""))
        if not self.credentials_ok(user, password):
            time.sleep(0.3)  # the gateway slows failures per source IP
            with self.gw.lock:
                self.gw.record("web_auth_failed", self.client_address[0], user[:64], "wrong user name or password")
            return self.error(401, "invalid user name or password")
        token = secrets.token_urlsafe(32)
        now = time.time()
        session = {"user": user, "csrf": secrets.token_urlsafe(32), "created": now, "last": now}
        with self.gw.lock:
            self.gw.sessions[hashlib.sha256(token.encode()).hexdigest()] = session
            self.gw.record("web_login", self.client_address[0], user, "")
        cookie = f"opcgw_session={token}; HttpOnly; SameSite=Strict; Path=/"
        return self.reply(200, {"csrf_token": session["csrf"], "user": user, "idle_expires_in": IDLE_SECS, "expires_at": iso(now + ABSOLUTE_SECS)}, [("Set-Cookie", cookie)])

    def status(self):
        gw = self.gw
        with gw.lock:
            counts = {"good": 0, "uncertain": 0, "bad": 0, "waiting": 0}
            for app in gw.applications:
                for device in app["devices"]:
                    for metric in device["metrics"]:
                        counts[metric["quality"]] += 1
        uptime = time.time() - STARTED
        roles = ["storage", "poller", "stream", "opcua", "web", "reload", "control"]
        return {
            "version": "0.1.0", "started_at": iso(STARTED), "uptime_seconds": int(uptime), "config_generation": 1,
            "verdict": "ok",
            "actors": [{"role": r, "state": "running", "restarts": 1 if r == "stream" else 0, "last_error": "stream reset by ChirpStack" if r == "stream" else None, "next_retry": None} for r in roles],
            "upstream": {"state": "connected", "reason": None, "last_poll": iso(time.time() - 3)},
            "poll": {"cycles": int(uptime / 10), "failed_cycles": 0}, "streams": {"open": 2, "failing": 0},
            "ingest": {"samples_per_second": 2.0, "samples_total": int(uptime * 2)},
            "quality": counts, "storage": {"bytes": 3_456_789}, "opcua": {"sessions": 1},
            "editing": {"enabled": False, "reason": "configuration editing is off ([web].config_editing = false)"},
        }

    def history(self, device_id, metric_name, query):
        with self.gw.lock:
            _, device = self.gw.find_device(device_id)
            metric = next((m for m in device["metrics"] if m["metric_name"] == metric_name), None) if device else None
            if metric is None:
                return self.error(404, "unknown device or metric")
            index = device["metrics"].index(metric)
            kind = metric["metric_type"]
        now = time.time()
        to = parse_time(query.get("to"), now)
        start = parse_time(query.get("from"), to - 3600)
        max_points = int(query.get("max_points", 1000))
        if not 10 <= max_points <= 10000:
            return self.error(400, "max_points must be between 10 and 10000", field="max_points")
        if start >= to:
            return self.error(400, "from must be before to", field="from")
        first = math.ceil(start / SAMPLE_PERIOD) * SAMPLE_PERIOD
        times = [t for t in range(int(first), int(to), SAMPLE_PERIOD)]
        values = [round(synthetic(index, t), 3) if kind == "Float" else int(50 + 40 * math.sin(t / 7200)) for t in times]
        answer = {"device_id": device_id, "metric": metric_name, "from": iso(start), "to": iso(to)}
        if len(times) <= max_points or kind in ("Bool", "String"):
            return self.reply(200, dict(answer, downsampled=False, points=[{"t": iso(t), "v": v} for t, v in zip(times, values)][-max_points:]))
        width = (to - start) / max_points
        buckets = {}
        for t, v in zip(times, values):
            buckets.setdefault(int((t - start) // width), []).append(v)
        points = [{"t": iso(start + b * width), "min": min(vs), "max": max(vs), "avg": round(sum(vs) / len(vs), 3), "n": len(vs)} for b, vs in sorted(buckets.items())]
        return self.reply(200, dict(answer, downsampled=True, points=points))

    def send_command(self, device_id, command_name, session):
        body = self.read_json()
        if body is None:
            return None
        gw = self.gw
        with gw.lock:
            _, device = gw.find_device(device_id)
            command = next((c for c in device["commands"] if c["command_name"] == command_name), None) if device else None
            if command is None:
                return self.error(404, "unknown device or command")
            key = body.get("idempotency_key") if isinstance(body, dict) else None
            if not isinstance(key, str) or not 8 <= len(key) <= 64:
                return self.error(422, "idempotency_key must be 8 to 64 characters", field="idempotency_key")
            value = body.get("value")
            kind = command["command_type"]
            ok = {
                "Float": isinstance(value, (int, float)) and not isinstance(value, bool),
                "Int": isinstance(value, int) and not isinstance(value, bool),
                "Bool": isinstance(value, bool),
                "String": isinstance(value, str),
            }[kind]
            if not ok:
                return self.error(422, f"value must be a {kind}", field="value")
            if kind in ("Float", "Int") and ((command["command_min"] is not None and value < command["command_min"]) or (command["command_max"] is not None and value > command["command_max"])):
                return self.error(422, f"value must be between {command['command_min']} and {command['command_max']}", field="value")
            known = gw.idempotency.get((device_id, command_name, key))
            if known:
                return self.reply(202, {"id": known, "state": "queued"})
            command_id = gw.next_command_id
            gw.next_command_id += 1
            gw.idempotency[(device_id, command_name, key)] = command_id
            now = iso(time.time())
            row = {"id": command_id, "device_id": device_id, "command_name": command_name, "state": "queued", "detail": None, "requested_by": f"web:{session['user']}", "created": now, "updated": now}
            gw.commands.insert(0, row)
            gw.record("web_command", self.client_address[0], session["user"], f"{device_id}/{command_name}")
            gw.publish("command", dict(row))
        threading.Timer(1.0, gw.advance_command, (command_id, "sent", "downlink queued at ChirpStack")).start()
        if command["command_confirmed"]:
            threading.Timer(2.5, gw.advance_command, (command_id, "acknowledged", "device confirmed the downlink")).start()
        return self.reply(202, {"id": command_id, "state": "queued"})

    def events(self, digest):
        q = queue.Queue()
        with self.gw.lock:
            self.gw.subscribers.append((digest, q))
        self.send_response(200)
        self.common_headers()
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Accel-Buffering", "no")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            self.wfile.write(b"retry: 2000\n: connected\n\n")
            self.wfile.flush()
            while not self.server.stopping.is_set():
                try:
                    kind, data = q.get(timeout=15)
                except queue.Empty:
                    self.wfile.write(b": ping\n\n")
                    self.wfile.flush()
                    continue
                if kind is None:
                    break  # signed out: the stream ends with the session
                self.wfile.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
        except OSError:
            pass
        finally:
            with self.gw.lock:
                self.gw.subscribers = [(d, s) for d, s in self.gw.subscribers if s is not q]

    def static(self, path):
        name = "index.html" if path in ("/", "") else path.lstrip("/")
        if name in PAGES and self.session()[0] != "cookie":
            location = "/login.html?next=" + self.path.lstrip("/").replace("&", "%26")
            self.send_response(303)
            self.common_headers()
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        target = (STATIC / name).resolve()
        if STATIC not in target.parents or not target.is_file():
            return self.error(404, "not found")
        data = target.read_bytes()
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or target.suffix == ".js":
            content_type = ("text/javascript" if target.suffix == ".js" else content_type) + "; charset=utf-8"
        self.send_response(200)
        self.common_headers()
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--user", default="opcua-user")
    parser.add_argument("--password", default="mock-password-123")
    parser.add_argument("--devices", type=int, default=6, help="how many devices (try 1000)")
    parser.add_argument("--tick", type=float, default=0.5, help="seconds between simulated uplinks")
    parser.add_argument("--editing-disabled", metavar="REASON", help="configuration editing off, with this reason")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.gateway = Gateway(args.user, args.password, args.devices, args.editing_disabled)
    server.verbose = args.verbose
    server.stopping = threading.Event()

    def uplinks():
        while not server.stopping.wait(args.tick):
            server.gateway.tick()

    threading.Thread(target=uplinks, daemon=True).start()
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/", flush=True)
    # Change this file to provoke ambient_drift (console.py appends a comment).
    print(f"config file {server.gateway.config.path}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stopping.set()
        server.server_close()
        shutil.rmtree(server.gateway.config.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
