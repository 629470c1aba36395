#!/bin/bash
# Validates deploy/docker-compose.yml with docker-compose config (Debian's docker-compose 1.29,
# installed by tools/dev deps) and checks the Kubernetes manifests with python3-yaml.
set -euo pipefail
here="$TEST_SRCDIR/$TEST_WORKSPACE"
export CONVERGE_TOKEN=test-token
out="$(docker-compose -f "$here/deploy/docker-compose.yml" --profile engines config)"
for s in management store notification engine-a engine-b; do
  grep -q "^  $s:" <<<"$out" || { echo "compose: no service $s"; exit 1; }
done
grep -q "condition: service_healthy" <<<"$out" || { echo "compose: management does not wait for healthy services"; exit 1; }
[ "$(grep -c 'restart: unless-stopped' <<<"$out")" -eq 5 ] || { echo "compose: restart policies"; exit 1; }
[ "$(grep -c 'convergectl' <<<"$out")" -ge 3 ] || { echo "compose: healthchecks"; exit 1; }
echo "ok   docker-compose config: 5 services, healthchecks, restart policies, volumes"
unset CONVERGE_TOKEN
if docker-compose -f "$here/deploy/docker-compose.yml" config -q 2>/dev/null; then
  echo "FAIL the compose file runs without an operator token"; exit 1
fi
echo "ok   refuses to run without CONVERGE_TOKEN"

/usr/bin/python3 - "$here/deploy/k8s" <<'PY'
import os, sys, yaml
d = sys.argv[1]
kinds = {}
for name in sorted(os.listdir(d)):
    if not name.endswith(".yaml") or name == "kustomization.yaml":
        continue
    for doc in yaml.safe_load_all(open(os.path.join(d, name))):
        kinds.setdefault(doc["kind"], []).append(doc)
def find(kind, name):
    return next(o for o in kinds[kind] if o["metadata"]["name"] == name)
store = find("StatefulSet", "store")
assert store["spec"]["volumeClaimTemplates"], "store needs persistent volumes"
assert store["spec"]["replicas"] >= 2, "two store shards"
assert find("Service", "store")["spec"]["clusterIP"] == "None", "store pods need stable names"
mgmt = find("Deployment", "management")
assert mgmt["spec"]["replicas"] >= 2, "several management replicas"
args = mgmt["spec"]["template"]["spec"]["containers"][0]["args"]
assert "--registry_in_store" in args, "replicas share the registry on the store"
shards = [a for a in args if a.startswith("--store=")][0].split("=", 1)[1].split(",")
assert len(shards) == store["spec"]["replicas"], "management lists every store shard"
notify = find("Deployment", "notification")
assert notify["spec"]["replicas"] >= 2, "several notification replicas"
store_args = store["spec"]["template"]["spec"]["containers"][0]["args"]
assert "--notify=all:notification-peers:7003" in store_args, "the store publishes to every replica"
assert find("Service", "notification-peers")["spec"]["clusterIP"] == "None"
for kind in ("StatefulSet", "Deployment"):
    for o in kinds[kind]:
        for c in o["spec"]["template"]["spec"]["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                assert "convergectl" in c[probe]["exec"]["command"], (o["metadata"]["name"], probe)
            assert any(v["name"] == "tls" for v in c["volumeMounts"]), "TLS secret mounted"
kust = yaml.safe_load(open(os.path.join(d, "kustomization.yaml")))
assert all(os.path.exists(os.path.join(d, r)) for r in kust["resources"])
print("ok   kubernetes manifests: store StatefulSet (%d shards, volumes), management, notification, probes, TLS"
      % store["spec"]["replicas"])
PY
echo "3 passed, 0 failed"
