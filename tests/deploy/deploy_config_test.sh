#!/bin/bash
# Validates deploy/docker-compose.yml with docker-compose config (Debian's docker-compose 1.29,
# installed by tools/dev deps) and checks the Kubernetes manifests with python3-yaml.
set -euo pipefail
here="$TEST_SRCDIR/$TEST_WORKSPACE"
export CONVERGE_TOKEN=test-token
out="$(docker-compose -f "$here/deploy/docker-compose.yml" --profile engines config)"
for s in management store notification engine-a engine-b etcd-1 etcd-2 etcd-3; do
  grep -q "^  $s:" <<<"$out" || { echo "compose: no service $s"; exit 1; }
done
grep -q "condition: service_healthy" <<<"$out" || { echo "compose: management does not wait for healthy services"; exit 1; }
[ "$(grep -c 'restart: unless-stopped' <<<"$out")" -eq 8 ] || { echo "compose: restart policies"; exit 1; }
[ "$(grep -c 'convergectl' <<<"$out")" -ge 3 ] || { echo "compose: healthchecks"; exit 1; }
[ "$(grep -c -- '- endpoint$' <<<"$out")" -eq 3 ] || { echo "compose: etcd healthchecks"; exit 1; }
grep -q "etcd-1=http://etcd-1:2380,etcd-2=http://etcd-2:2380,etcd-3=http://etcd-3:2380" <<<"$out" \
  || { echo "compose: etcd's three members"; exit 1; }
dockerfile="$here/deploy/docker/Dockerfile"
for flag in '"--registry_in_etcd"' '"--etcd=etcd-1:2379,etcd-2:2379,etcd-3:2379"' '"--advertise_host=notification"'; do
  grep -q -- "$flag" "$dockerfile" || { echo "Dockerfile: no $flag"; exit 1; }
done
echo "ok   docker-compose config: 8 services (3 etcd members), healthchecks, restart policies, volumes, services on etcd"
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
ETCD = "--etcd=etcd-0.etcd:2379,etcd-1.etcd:2379,etcd-2.etcd:2379"
assert "--registry_in_etcd" in args and ETCD in args, "replicas share the registry in etcd"
shards = [a for a in args if a.startswith("--store=")][0].split("=", 1)[1].split(",")
assert len(shards) == store["spec"]["replicas"], "management lists every store shard"
notify = find("Deployment", "notification")
assert notify["spec"]["replicas"] >= 2, "several notification replicas"
store_args = store["spec"]["template"]["spec"]["containers"][0]["args"]
assert ETCD in store_args, "the store publishes to every replica announced in etcd"
notify_args = notify["spec"]["template"]["spec"]["containers"][0]["args"]
assert ETCD in notify_args and "--advertise_host=$(POD_IP)" in notify_args, "notify replicas announce themselves"
etcd = find("StatefulSet", "etcd")
assert etcd["spec"]["replicas"] == 3 and etcd["spec"]["volumeClaimTemplates"], "three etcd members with volumes"
assert find("Service", "etcd")["spec"]["clusterIP"] == "None", "etcd members need stable names"
assert "etcd-2=http://etcd-2.etcd:2380" in etcd["spec"]["template"]["spec"]["containers"][0]["args"][0]
for kind in ("StatefulSet", "Deployment"):
    for o in kinds[kind]:
        if o["metadata"]["name"] == "etcd":
            continue  # probed with etcdctl, no TLS secret (a network only the services reach)
        for c in o["spec"]["template"]["spec"]["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                assert "convergectl" in c[probe]["exec"]["command"], (o["metadata"]["name"], probe)
            assert any(v["name"] == "tls" for v in c["volumeMounts"]), "TLS secret mounted"
kust = yaml.safe_load(open(os.path.join(d, "kustomization.yaml")))
assert all(os.path.exists(os.path.join(d, r)) for r in kust["resources"])
print("ok   kubernetes manifests: etcd StatefulSet (3 members), store StatefulSet (%d shards, volumes), "
      "management and notification on etcd, probes, TLS" % store["spec"]["replicas"])
PY
echo "3 passed, 0 failed"
