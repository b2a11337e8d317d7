"""Checks across the deploy files that no schema validator can see (run by `make lint`):

- the image's USER is numeric (the kubelet refuses `runAsNonRoot` with a name) and is the
  user, group and fsGroup of the Kubernetes pod; the image has a HEALTHCHECK;
- the manifest has one replica, liveness and readiness probes on the metrics port, the key
  pair from a Secret and the configuration from a ConfigMap;
- compose starts the demo by default (a service without a profile);
- every metric the Grafana dashboard queries is one the gateway exports.
"""

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
problems = []


def check(condition, message):
    if not condition:
        problems.append(message)


dockerfile = (ROOT / "deploy/Dockerfile").read_text()
users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
check(len(users) == 1, f"Dockerfile: expected one USER line, found {users}")
uid, _, gid = users[0].partition(":") if users else ("", "", "")
check(uid.isdigit() and gid.isdigit(), f"Dockerfile: USER {users} must be numeric uid:gid")
check(re.search(r"^HEALTHCHECK\s", dockerfile, re.M), "Dockerfile: no HEALTHCHECK")

documents = [d for d in yaml.safe_load_all((ROOT / "deploy/kubernetes.yaml").read_text()) if d]
deployments = [d for d in documents if d["kind"] == "Deployment"]
check(len(deployments) == 1, "kubernetes.yaml: expected one Deployment")
if deployments:
    spec = deployments[0]["spec"]
    check(spec["replicas"] == 1, "kubernetes.yaml: the database is a local file: one replica")
    check(spec["strategy"]["type"] == "Recreate", "kubernetes.yaml: strategy must be Recreate")
    pod = spec["template"]["spec"]
    context = pod["securityContext"]
    check(context.get("runAsNonRoot") is True, "kubernetes.yaml: runAsNonRoot")
    for key, want in [("runAsUser", uid), ("runAsGroup", gid), ("fsGroup", gid)]:
        check(str(context.get(key)) == want, f"kubernetes.yaml: {key} {context.get(key)} != image {want}")
    main = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        get = main.get(probe, {}).get("httpGet", {})
        check(get.get("path") == path and get.get("port") in ("metrics", ports.get("metrics")),
              f"kubernetes.yaml: {probe} must GET {path} on the metrics port")
    volumes = {v["name"]: v for v in pod["volumes"]}
    check(any("secret" in v for v in volumes.values()), "kubernetes.yaml: key pair from a Secret")
    check(any("configMap" in v for v in volumes.values()), "kubernetes.yaml: config from a ConfigMap")
    check(any("persistentVolumeClaim" in v for v in volumes.values()), "kubernetes.yaml: a PVC")

compose = yaml.safe_load((ROOT / "deploy/compose.yml").read_text())
defaults = [n for n, s in compose["services"].items() if not s.get("profiles")]
check(any("opcgw-demo" in str(compose["services"][n].get("entrypoint")) for n in defaults),
      f"compose.yml: `docker compose up` must start the demo (services without a profile: {defaults})")

exported = set(re.findall(r'register(?:_with_unit)?\(\s*"([a-z_]+)"', (ROOT / "src/metrics/mod.rs").read_text()))
names = set()
for name in exported:
    names.update({f"opcgw_{name}", f"opcgw_{name}_total", f"opcgw_{name}_info"})
    for unit in ("seconds", "bytes"):
        base = f"opcgw_{name}_{unit}"
        names.update({base, f"{base}_bucket", f"{base}_count", f"{base}_sum"})
names.update({"process_resident_memory_bytes", "process_open_fds", "process_cpu_seconds_total",
              "process_threads", "process_start_time_seconds"})
dashboard = json.loads((ROOT / "deploy/grafana-dashboard.json").read_text())
for panel in dashboard["panels"]:
    for target in panel["targets"]:
        for metric in re.findall(r"\b((?:opcgw|process)_[a-z_]+)\b", target["expr"]):
            check(metric in names, f"grafana-dashboard.json: panel {panel['title']!r} queries {metric}, which is not exported")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print("deploy files: consistent")
