"""The configuration and client-certificate API of CONFIG-API.md, in memory, for mock_server.py.

The tree of applications -> devices -> metrics and commands is kept here and written to a real
file (TOML, in a temporary directory) after every edit, so ambient drift is provoked the way it
happens on a gateway: change the file on disk (console.py appends a comment) and the next edit
answers 409 `ambient_drift` until `POST /api/config/reload`. The mock does not parse the file
back: a reload only takes note of its new content. The rules are the gateway's
(src/config/validate.rs), answered with the same statuses and bodies.

A request carrying `X-Mock-Silent: 1` publishes no `config` event: it plays an edit the page
has not heard of yet (another console, a script), so a test can make the page send something
the gateway then refuses with field-level problems.
"""

import copy
import hashlib
import json
import os
import tempfile
from pathlib import Path

TYPES = ("Float", "Int", "Bool", "String")
HOT = {
    "logging.level", "chirpstack.polling_frequency", "chirpstack.retry", "chirpstack.delay", "chirpstack.list_page_size",
    "chirpstack.poll_concurrency", "chirpstack.command_timeout_seconds", "opcua.stale_threshold_seconds",
    "opcua.bad_threshold_seconds", "opcua.max_history_data_results_per_node", "storage.retention_days",
}
BAD_THRESHOLD = 600


class Refusal(Exception):
    """An edit refused: HTTP status and the error body of CONFIG-API.md."""

    STATUS = {
        "not_found": 404, "application_not_found": 404, "device_not_found": 404, "command_not_found": 404, "conflict": 409,
        "ambient_drift": 409, "env_override": 409, "validation": 422, "immutable_field": 422, "editing_disabled": 503,
    }

    def __init__(self, reason, error, field=None, problems=None):
        super().__init__(error)
        self.status = self.STATUS[reason]
        self.body = {"error": error, "reason": reason}
        if field or problems:
            self.body["field"] = field or problems[0]["field"]
        if problems:
            self.body["problems"] = problems


def settings():
    rows = [
        ("logging.level", "info", "file", None), ("logging.dir", "log", "default", None),
        ("chirpstack.server_address", "http://127.0.0.1:8080", "file", None),
        ("chirpstack.api_token", "***REDACTED***", "env", "OPCGW_CHIRPSTACK__API_TOKEN"),
        ("chirpstack.tenant_id", "52f14cd4-c6f1-4fbd-8f87-4025e1d49242", "file", None),
        ("chirpstack.polling_frequency", 10, "file", None), ("chirpstack.retry", 3, "default", None),
        ("chirpstack.delay", 5, "default", None), ("chirpstack.list_page_size", 100, "default", None),
        ("opcua.application_name", "opcgw", "file", None), ("opcua.application_uri", "urn:opcgw", "file", None),
        ("opcua.host_ip_address", "0.0.0.0", "file", None), ("opcua.host_port", 4855, "file", None),
        ("opcua.endpoints", ["None", "Basic256Sha256_SignAndEncrypt"], "file", None),
        ("opcua.user_name", "opcua-user", "file", None),
        ("opcua.user_password", "***REDACTED***", "secret_file", "/run/secrets/opcua_password"),
        ("opcua.stale_threshold_seconds", 120, "file", None), ("opcua.bad_threshold_seconds", BAD_THRESHOLD, "default", None),
        ("web.enabled", True, "file", None), ("web.port", 8080, "file", None),
        ("storage.database_path", "data/opcgw.redb", "default", None), ("storage.retention_days", 30, "file", None),
    ]
    out = []
    for key, value, source, origin in rows:
        row = {"key": key, "value": value, "class": "hot" if key in HOT else "restart_required", "source": source}
        if origin:
            row["from"] = origin
        out.append(row)
    return out


def toml_string(text):
    return json.dumps(text, ensure_ascii=False)


class ConfigStore:
    def __init__(self, live_applications, editing_reason=None):
        self.dir = Path(tempfile.mkdtemp(prefix="opcgw-mock-"))
        self.path = self.dir / "config.toml"
        self.generation = 1
        self.editing_reason = editing_reason
        self.tree = [self.from_live(app) for app in live_applications]
        # The spare pump's keys come from the environment: read-only in the console.
        self.env_locked = [{"application_id": self.tree[-1]["application_id"], "device_id": "pump-08", "variable": "OPCGW_APPLICATION__1__DEVICE__1__DEVICE_NAME"}]
        self.write()
        self.certificates = self.canned_certificates()

    @staticmethod
    def from_live(app):
        devices = []
        for device in app["devices"]:
            metrics = [{"metric_name": m["metric_name"], "chirpstack_metric_name": m["metric_name"], "metric_type": m["metric_type"], **({"metric_unit": m["unit"]} if m.get("unit") else {})} for m in device["metrics"]]
            commands = []
            for i, c in enumerate(device["commands"]):
                command = {k: c[k] for k in ("command_name", "command_confirmed", "command_port", "command_type")}
                command["command_id"] = i + 1
                for k in ("command_min", "command_max"):
                    if c.get(k) is not None:
                        command[k] = c[k]
                commands.append(command)
            devices.append({"device_id": device["device_id"], "device_name": device["device_name"], "read_metric": metrics, "command": commands})
        return {"application_id": app["application_id"], "application_name": app["application_name"], "device": devices}

    # -- the file ------------------------------------------------------------------------------

    def render(self):
        lines = ["# opcgw configuration (written by the mock console; comments elsewhere are kept by the real editor)", ""]
        for app in self.tree:
            lines += ["[[application]]", f"application_name = {toml_string(app['application_name'])}", f"application_id = {toml_string(app['application_id'])}", ""]
            for d in app["device"]:
                lines += ["[[application.device]]", f"device_name = {toml_string(d['device_name'])}", f"device_id = {toml_string(d['device_id'])}"]
                if d.get("stale_threshold_seconds") is not None:
                    lines.append(f"stale_threshold_seconds = {d['stale_threshold_seconds']}")
                lines.append("")
                for m in d["read_metric"]:
                    lines += ["[[application.device.read_metric]]"] + [f"{k} = {toml_string(v)}" for k, v in m.items()] + [""]
                for c in d["command"]:
                    lines += ["[[application.device.command]]"] + [f"{k} = {json.dumps(v)}" for k, v in c.items()] + [""]
        return "\n".join(lines)

    def write(self):
        """Atomically, as the gateway does: temp file in the same directory, fsync, rename."""
        data = self.render().encode()
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".config.toml.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self.loaded_hash = hashlib.sha256(data).hexdigest()

    def on_disk_hash(self):
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def reload(self):
        self.loaded_hash = self.on_disk_hash()
        self.generation += 1
        return {"generation": self.generation, "changed_knobs": []}

    # -- reading -------------------------------------------------------------------------------

    def editing(self):
        return {"enabled": False, "reason": self.editing_reason} if self.editing_reason else {"enabled": True}

    def view(self):
        return {"path": str(self.path), "generation": self.generation, "editing": self.editing(), "settings": settings(), "env_locked": self.env_locked}

    def find_app(self, app_id):
        app = next((a for a in self.tree if a["application_id"] == app_id), None)
        if app is None:
            raise Refusal("application_not_found", f'application "{app_id}" is not configured')
        return app

    def find_device(self, app_id, device_id):
        device = next((d for d in self.find_app(app_id)["device"] if d["device_id"] == device_id), None)
        if device is None:
            raise Refusal("device_not_found", f'device "{device_id}" is not configured')
        return device

    def find_command(self, app_id, device_id, name):
        command = next((c for c in self.find_device(app_id, device_id)["command"] if c["command_name"] == name), None)
        if command is None:
            raise Refusal("command_not_found", f'command "{name}" is not configured')
        return command

    @staticmethod
    def device_summary(d):
        return {"device_id": d["device_id"], "device_name": d["device_name"], "metric_count": len(d["read_metric"]), "command_count": len(d["command"])}

    def get(self, parts):
        """GET /api/applications...; parts after "applications"."""
        if not parts:
            return {"generation": self.generation, "editing": self.editing(), "applications": [{"application_id": a["application_id"], "application_name": a["application_name"], "device_count": len(a["device"])} for a in self.tree]}
        app = self.find_app(parts[0])
        if len(parts) == 1:
            return {"application_id": app["application_id"], "application_name": app["application_name"], "devices": [self.device_summary(d) for d in app["device"]]}
        if len(parts) == 2 and parts[1] == "devices":
            return {"devices": [self.device_summary(d) for d in app["device"]]}
        device = self.find_device(parts[0], parts[2])
        if len(parts) == 3:
            return dict(copy.deepcopy(device_public(device)), application_id=app["application_id"])
        if len(parts) == 4 and parts[3] == "commands":
            return {"commands": copy.deepcopy(device["command"])}
        if len(parts) == 5 and parts[3] == "commands":
            return copy.deepcopy(self.find_command(parts[0], parts[2], parts[4]))
        raise Refusal("not_found", "no such route")

    # -- editing -------------------------------------------------------------------------------

    def before_edit(self, app_id=None, device_id=None):
        if self.editing_reason:
            raise Refusal("editing_disabled", f"configuration editing is off: {self.editing_reason}")
        if self.on_disk_hash() != self.loaded_hash:
            raise Refusal("ambient_drift", "the configuration file changed on disk since it was loaded; reload it (SIGHUP, `opcgw ctl reload` or the console's Reload) and edit again")
        for lock in self.env_locked:
            if lock["application_id"] == app_id and lock.get("device_id") == device_id and app_id is not None:
                field = "device_name" if device_id else "application_name"
                raise Refusal("env_override", f"{field} is set by the environment variable {lock['variable']}; unset it to edit it here", field=field)

    def edit(self, method, parts, body):
        """A mutation: (status, answer body, Location or None). Raises Refusal."""
        if parts == []:
            self.before_edit()
            return self.create_application(body)
        app_id = parts[0]
        if len(parts) == 1:
            self.before_edit(app_id)
            app = self.find_app(app_id)
            if method == "PUT":
                return self.update_application(app, body)
            if app["device"]:
                raise Refusal("conflict", f'application "{app_id}" still has {len(app["device"])} devices; delete them first')
            if len(self.tree) == 1:
                raise Refusal("conflict", "the only application cannot be deleted")
            self.tree.remove(app)
            return self.done(204, None)
        if len(parts) == 2 and method == "POST":
            self.before_edit(app_id)
            return self.create_device(self.find_app(app_id), body)
        device_id = parts[2]
        self.before_edit(app_id, device_id)
        app = self.find_app(app_id)
        device = self.find_device(app_id, device_id)
        if len(parts) == 3 and method == "PUT":
            return self.update_device(app, device, body)
        if len(parts) == 3 and method == "DELETE":
            app["device"].remove(device)
            return self.done(204, None)
        if len(parts) == 4 and method == "POST":
            command = self.command_from(body)
            if any(c["command_name"] == command["command_name"] for c in device["command"]):
                raise Refusal("conflict", f'command "{command["command_name"]}" already exists in this device', field="command_name")
            return self.try_apply(lambda: device["command"].append(command), command, 201, device_path(app, device) + f"/commands/{command['command_name']}")
        name = parts[4]
        old = self.find_command(app_id, device_id, name)
        if method == "DELETE":
            device["command"].remove(old)
            return self.done(204, None)
        command = self.command_from(body)
        if command["command_name"] != name:
            raise Refusal("immutable_field", "command_name cannot change; delete and create instead", field="command_name")
        index = device["command"].index(old)
        return self.try_apply(lambda: device["command"].__setitem__(index, command), command, 200)

    def done(self, status, answer, location=None):
        self.write()
        self.generation += 1
        if answer is not None:
            answer = dict(answer, generation=self.generation, **{"class": "topology"})
        return status, answer, location

    def try_apply(self, change, answer, status, location=None):
        """Applies `change` to a copy, validates the whole tree as a load would, then keeps it."""
        saved = copy.deepcopy(self.tree)
        change()
        problems = validate(self.tree)
        if problems:
            self.tree = saved
            raise Refusal("validation", "; ".join(f"{p['field']}: {p['message']}" for p in problems), problems=problems)
        return self.done(status, answer() if callable(answer) else answer, location)

    def create_application(self, body):
        fields = expect(body, {"application_id": str, "application_name": str})
        if any(a["application_id"] == fields["application_id"] for a in self.tree):
            raise Refusal("conflict", f'application "{fields["application_id"]}" already exists', field="application_id")
        app = {"application_id": fields["application_id"], "application_name": fields["application_name"], "device": []}
        answer = {"application_id": app["application_id"], "application_name": app["application_name"], "device_count": 0}
        return self.try_apply(lambda: self.tree.append(app), answer, 201, f"/api/applications/{app['application_id']}")

    def update_application(self, app, body):
        fields = expect(body, {"application_name": str}, optional={"application_id": str})
        if fields.get("application_id", app["application_id"]) != app["application_id"]:
            raise Refusal("immutable_field", "application_id cannot change; delete and create instead", field="application_id")
        answer = {"application_id": app["application_id"], "application_name": fields["application_name"], "device_count": len(app["device"])}
        return self.try_apply(lambda: app.__setitem__("application_name", fields["application_name"]), answer, 200)

    def create_device(self, app, body):
        fields = expect(body, {"device_id": str, "device_name": str}, optional={"stale_threshold_seconds": int, "read_metric": list, "command": list})
        if any(d["device_id"] == fields["device_id"] for a in self.tree for d in a["device"]):
            raise Refusal("conflict", f'device "{fields["device_id"]}" already exists', field="device_id")
        device = {"device_id": fields["device_id"], "device_name": fields["device_name"], "read_metric": metrics_from(fields.get("read_metric", [])), "command": [self.command_from(c, f"command[{i}].") for i, c in enumerate(fields.get("command", []))]}
        if "stale_threshold_seconds" in fields:
            device["stale_threshold_seconds"] = fields["stale_threshold_seconds"]
        return self.try_apply(lambda: app["device"].append(device), lambda: device_public(device), 201, device_path(app, device))

    def update_device(self, app, device, body):
        fields = expect(body, {"device_name": str}, optional={"device_id": str, "stale_threshold_seconds": int, "read_metric": list})
        if fields.get("device_id", device["device_id"]) != device["device_id"]:
            raise Refusal("immutable_field", "device_id cannot change; delete and create instead", field="device_id")

        def change():
            device["device_name"] = fields["device_name"]
            device["read_metric"] = metrics_from(fields.get("read_metric", []))
            device.pop("stale_threshold_seconds", None)
            if "stale_threshold_seconds" in fields:
                device["stale_threshold_seconds"] = fields["stale_threshold_seconds"]

        return self.try_apply(change, lambda: device_public(device), 200)

    @staticmethod
    def command_from(body, prefix=""):
        fields = expect(body, {"command_name": str, "command_id": int, "command_port": int}, optional={"command_confirmed": bool, "command_type": str, "command_min": float, "command_max": float}, prefix=prefix)
        command = {"command_name": fields["command_name"], "command_id": fields["command_id"], "command_confirmed": fields.get("command_confirmed", False), "command_port": fields["command_port"], "command_type": fields.get("command_type", "Int")}
        for k in ("command_min", "command_max"):
            if k in fields:
                command[k] = fields[k]
        return command

    # -- certificates ----------------------------------------------------------------------------

    @staticmethod
    def canned_certificates():
        def cert(n, state, subject, uri, before, after, expired):
            thumbprint = hashlib.sha1(subject.encode()).hexdigest().upper()
            return {"thumbprint": thumbprint, "state": state, "subject": subject, "application_uri": uri, "not_before": before, "not_after": after, "expired": expired, "file": f"pki/{state}/{subject.split('=')[-1]} [{thumbprint}].der"}

        return [
            cert(1, "trusted", "CN=UaExpert@scada-01", "urn:scada-01:UnifiedAutomation:UaExpert", "2025-03-01T00:00:00.000Z", "2030-03-01T00:00:00.000Z", False),
            cert(2, "rejected", "CN=FUXA", "urn:fuxa-host:FUXA", "2026-01-10T00:00:00.000Z", "2031-01-10T00:00:00.000Z", False),
            cert(3, "rejected", "CN=Node-RED OPC UA", "urn:node-red:opcua-client", "2021-05-01T00:00:00.000Z", "2024-05-01T00:00:00.000Z", True),
        ]

    def certificate(self, thumbprint):
        cert = next((c for c in self.certificates if c["thumbprint"] == thumbprint), None)
        if cert is None:
            raise Refusal("not_found", f"no client certificate has the thumbprint {thumbprint[:64]}")
        return cert

    def move_certificate(self, thumbprint, state):
        cert = self.certificate(thumbprint)
        if cert["state"] == state:
            raise Refusal("conflict", f"the certificate is already {state}")
        cert["file"] = cert["file"].replace(f"pki/{cert['state']}/", f"pki/{state}/")
        cert["state"] = state
        return dict(cert)


def device_path(app, device):
    return f"/api/applications/{app['application_id']}/devices/{device['device_id']}"


def device_public(device):
    out = {"device_id": device["device_id"], "device_name": device["device_name"], "read_metric": copy.deepcopy(device["read_metric"]), "command": copy.deepcopy(device["command"])}
    if device.get("stale_threshold_seconds") is not None:
        out["stale_threshold_seconds"] = device["stale_threshold_seconds"]
    return out


def expect(body, required, optional=None, prefix=""):
    """The typed fields of a JSON object; a missing or mistyped one is 422 with its json path."""
    optional = optional or {}
    if not isinstance(body, dict):
        raise Refusal("validation", "the body must be a JSON object", field=prefix.rstrip(".") or "$")
    for key in body:
        if key not in required and key not in optional:
            raise Refusal("validation", f"unknown field {key}", field=prefix + key)
    out = {}
    for key, kind in list(required.items()) + list(optional.items()):
        if key not in body or (key in optional and body[key] is None):
            if key in required:
                raise Refusal("validation", f"{key} is required", field=prefix + key)
            continue
        value = body[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float else isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is int and ok and value < 0:
            ok = False
        if not ok:
            raise Refusal("validation", f"{key} has the wrong type", field=prefix + key)
        out[key] = value
    return out


def metrics_from(items):
    metrics = []
    for i, m in enumerate(items):
        fields = expect(m, {"metric_name": str, "chirpstack_metric_name": str, "metric_type": str}, optional={"metric_unit": str}, prefix=f"read_metric[{i}].")
        if fields["metric_type"] not in TYPES:
            raise Refusal("validation", f"metric_type must be one of {', '.join(TYPES)}", field=f"read_metric[{i}].metric_type")
        metrics.append(fields)
    return metrics


def validate(tree):
    """The gateway's tree rules; problems in the request's terms of the device or app edited."""
    problems = []

    def bad(field, message):
        problems.append({"field": field, "message": message})

    def ident(field, value, node_id=True):
        if not value.strip():
            bad(field, "must not be empty")
        elif "/" in value:
            bad(field, "must not contain '/'")
        elif node_id and (value == "Gateway" or value.startswith("Gateway/")):
            bad(field, '"Gateway" is the NodeId of the gateway\'s own folder')

    app_names = set()
    for app in tree:
        ident("application_id", app["application_id"])
        if not app["application_name"].strip():
            bad("application_name", "must not be empty")
        if app["application_name"] in app_names:
            bad("application_name", f'"{app["application_name"]}" is used twice')
        app_names.add(app["application_name"])
        device_names = set()
        for d in app["device"]:
            ident("device_id", d["device_id"])
            if not d["device_name"].strip():
                bad("device_name", "must not be empty")
            if d["device_name"] in device_names:
                bad("device_name", f'"{d["device_name"]}" is used twice in this application')
            device_names.add(d["device_name"])
            stale = d.get("stale_threshold_seconds")
            if stale is not None and not 1 <= stale <= 86400:
                bad("stale_threshold_seconds", f"{stale} is out of range; allowed 1-86400")
            elif stale is not None and stale >= BAD_THRESHOLD:
                bad("stale_threshold_seconds", "must be less than opcua.bad_threshold_seconds")
            names, upstream = set(), set()
            for i, m in enumerate(d["read_metric"]):
                ident(f"read_metric[{i}].metric_name", m["metric_name"], node_id=False)
                if m["metric_name"] in names:
                    bad(f"read_metric[{i}].metric_name", f'"{m["metric_name"]}" is used twice in this device')
                names.add(m["metric_name"])
                if not m["chirpstack_metric_name"].strip():
                    bad(f"read_metric[{i}].chirpstack_metric_name", "must not be empty")
                if m["chirpstack_metric_name"] in upstream:
                    bad(f"read_metric[{i}].chirpstack_metric_name", f'"{m["chirpstack_metric_name"]}" is used twice in this device')
                upstream.add(m["chirpstack_metric_name"])
            ids = set()
            for c in d["command"]:
                ident("command_name", c["command_name"], node_id=False)
                if c["command_name"] in names:
                    bad("command_name", f'"{c["command_name"]}" is already used by a metric or command of this device')
                names.add(c["command_name"])
                if c["command_id"] in ids or c["command_id"] > 4294967295:
                    bad("command_id", f'{c["command_id"]} is used twice in this device or out of range')
                ids.add(c["command_id"])
                if not 1 <= c["command_port"] <= 223:
                    bad("command_port", f'{c["command_port"]} is out of range; allowed 1-223')
                if c["command_type"] not in TYPES:
                    bad("command_type", f"must be one of {', '.join(TYPES)}")
                low, high = c.get("command_min"), c.get("command_max")
                if (low is not None or high is not None) and c["command_type"] not in ("Int", "Float"):
                    bad("command_min", "a range applies only to Int or Float commands")
                elif low is not None and high is not None and low > high:
                    bad("command_min", "must not be greater than command_max")
    return problems
