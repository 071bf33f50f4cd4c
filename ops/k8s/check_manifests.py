"""Checks a rendered overlay (kubectl kustomize output) for what the issue asks of it, beyond
the API schemas that kubernetes-validate checks:

  python3 ops/k8s/check_manifests.py RENDERED.yaml

Every workload: non-root pod, seccomp RuntimeDefault, no service-account token, each container
read-only root / no privilege escalation / all capabilities dropped / requests and limits; no
Secret object and no secret-looking variable with a literal value (secrets are files: NAME_FILE);
probes on /ready and /health on each binary's operator port; the router's LoadBalancer on TCP 80/443; the platform ClusterIP
with a CPU HPA; PodDisruptionBudgets; NetworkPolicies that let only the router (and Prometheus)
reach the platform; the four CronJobs with the seeds' schedules and Forbid; the migration Job;
the router's upstreams naming the headless platform and workers Services of the rendered
namespace; the router's TLS listener on the port the Service's 443 targets, its sealing key
and Redis URL as secret files, ACME on, and ROUTER_RATE_LIMIT_INSTANCES equal to its replicas;
no replicas on the platform Deployment (its HPA owns the count). Prints one line per check and
exits 1 on the first failure.
"""

import re
import sys

import yaml

SCHEDULES = {
    "process-emails": "*/5 * * * *",
    "process-donations": "0 * * * *",
    "cleanup-sessions": "0 3 * * *",
    "generate-reports": "0 6 * * 1",
}
SECRETISH = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY|DATABASE_URL|MIGRATION_URL|REDIS_URL|SMTP_URL)$")
PUBLIC = {"STRIPE_PUBLISHABLE_KEY"}

passed = 0


def ok(msg):
    global passed
    passed += 1
    print(f"  ok  {msg}")


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def pod_spec(obj):
    kind = obj["kind"]
    if kind in ("Deployment", "Job"):
        return obj["spec"]["template"]["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def main(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    by = {}
    for d in docs:
        by.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    if "Secret" in by:
        fail(f"Secret objects in the manifests: {sorted(by['Secret'])}")
    ok("no Secret object: secrets are referenced, never inlined")

    # Generated ConfigMaps carry a hash suffix: find them by their generator name.
    configmaps = {re.sub(r"-[a-z0-9]{10}$", "", n): d.get("data", {})
                  for n, d in by.get("ConfigMap", {}).items()}
    config = configmaps.get("app-config", {})
    for cm, data in configmaps.items():
        for name in data:
            if SECRETISH.search(name) and name not in PUBLIC:
                fail(f"ConfigMap {cm} holds {name}")

    workloads = [d for d in docs if pod_spec(d) is not None]
    for w in workloads:
        label = f"{w['kind']}/{w['metadata']['name']}"
        spec = pod_spec(w)
        psc = spec.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True or psc.get("runAsUser", 0) == 0:
            fail(f"{label}: pod not forced non-root")
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            fail(f"{label}: no RuntimeDefault seccomp profile")
        if spec.get("automountServiceAccountToken") is not False:
            fail(f"{label}: service-account token mounted")
        for c in spec["containers"]:
            csc = c.get("securityContext", {})
            if csc.get("readOnlyRootFilesystem") is not True:
                fail(f"{label}/{c['name']}: root filesystem writable")
            if csc.get("allowPrivilegeEscalation") is not False:
                fail(f"{label}/{c['name']}: privilege escalation allowed")
            if csc.get("capabilities", {}).get("drop") != ["ALL"]:
                fail(f"{label}/{c['name']}: capabilities not all dropped")
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(res.get(part, {})):
                    fail(f"{label}/{c['name']}: resources.{part} lacks cpu or memory")
            for e in c.get("env", []):
                if SECRETISH.search(e["name"]) and "value" in e and e["name"] not in PUBLIC:
                    fail(f"{label}/{c['name']}: {e['name']} is a literal (use {e['name']}_FILE)")
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            secret_vols = [v for v in spec.get("volumes", []) if "secret" in v]
            if not secret_vols or not {v["name"] for v in secret_vols} <= mounts:
                fail(f"{label}/{c['name']}: secrets not mounted as files")
    ok(f"{len(workloads)} workloads: non-root, seccomp, read-only root, no escalation, caps dropped, "
       "requests/limits, secrets as mounted files only")

    # Probes go to each binary's private operator listener: the port named "operator", bound
    # by the binary's *_OPERATOR_LISTEN, and never the API port.
    operator_env = {"router": "ROUTER_OPERATOR_LISTEN", "platform": "PLATFORM_OPERATOR_LISTEN",
                    "workers": "WORKERS_OPERATOR_LISTEN"}
    deps = by.get("Deployment", {})
    operator_ports = set()
    for name, env_name in operator_env.items():
        if name not in deps:
            fail(f"no Deployment {name}")
        c = pod_spec(deps[name])["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        env = {e["name"]: e.get("value", "") for e in c.get("env", [])}
        listen = env.get(env_name, "")
        if "operator" not in ports or not listen.endswith(f":{ports['operator']}"):
            fail(f"Deployment/{name}: {env_name}={listen!r} does not bind its 'operator' port {ports.get('operator')}")
        operator_ports.add(ports["operator"])
        for kind, want in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
            get = c.get(kind, {}).get("httpGet", {})
            if (get.get("path"), get.get("port")) != (want, "operator"):
                fail(f"Deployment/{name} {kind} is {get.get('path')} on {get.get('port')}, "
                     f"want {want} on the operator port")
    ok("Deployments router, platform, workers: readiness /ready and liveness /health on each "
       f"one's operator port {sorted(operator_ports)}")
    metrics_policy = by.get("NetworkPolicy", {}).get("metrics-from-prometheus", {}).get("spec", {})
    allowed = {p["port"] for rule in metrics_policy.get("ingress", []) for p in rule.get("ports", [])}
    if allowed != operator_ports:
        fail(f"NetworkPolicy metrics-from-prometheus opens {sorted(allowed)}, want the operator "
             f"ports {sorted(operator_ports)} only")
    ok("Prometheus may reach the operator ports only")

    svc = by.get("Service", {})
    r = svc.get("router", {}).get("spec", {})
    ports = sorted((p["port"], p.get("protocol", "TCP")) for p in r.get("ports", []))
    if r.get("type") != "LoadBalancer" or ports != [(80, "TCP"), (443, "TCP")]:
        fail(f"Service/router is {r.get('type')} {ports}")
    p = svc.get("platform", {}).get("spec", {})
    if p.get("type") != "ClusterIP":
        fail("Service/platform is not ClusterIP")
    hpa = by.get("HorizontalPodAutoscaler", {}).get("platform", {}).get("spec", {})
    metric = (hpa.get("metrics") or [{}])[0].get("resource", {})
    if hpa.get("scaleTargetRef", {}).get("name") != "platform" or metric.get("name") != "cpu":
        fail("no CPU HorizontalPodAutoscaler on Deployment/platform")
    ok(f"router LoadBalancer TCP 80/443; platform ClusterIP; HPA on CPU "
       f"({hpa['minReplicas']}-{hpa['maxReplicas']} replicas)")

    pdbs = {d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
            for d in by.get("PodDisruptionBudget", {}).values()}
    if not {"router", "platform", "workers"} <= pdbs:
        fail(f"PodDisruptionBudgets only for {sorted(pdbs)}")
    ok("PodDisruptionBudgets for router, platform, workers")

    nps = by.get("NetworkPolicy", {})
    if not any(n["spec"]["podSelector"] == {} and n["spec"].get("policyTypes") == ["Ingress"]
               and "ingress" not in n["spec"] for n in nps.values()):
        fail("no default-deny ingress policy")
    reach = []
    for n in nps.values():
        sel = n["spec"]["podSelector"]
        names = set(sel.get("matchLabels", {}).values())
        for e in sel.get("matchExpressions", []):
            if e["key"] == "app.kubernetes.io/component" and "api" in e["values"]:
                names.add("platform")
        if "platform" not in names:
            continue
        for rule in n["spec"].get("ingress", []):
            for peer in rule.get("from", [{}]):
                reach.append(peer)
    for peer in reach:
        if peer.get("podSelector", {}).get("matchLabels") == {"app.kubernetes.io/name": "router"} \
                and "namespaceSelector" not in peer:
            continue
        if peer.get("namespaceSelector", {}).get("matchLabels") == \
                {"kubernetes.io/metadata.name": "monitoring"}:
            continue
        fail(f"platform reachable from {peer}")
    ok("NetworkPolicies: default deny; platform reachable from router pods (and Prometheus) only")

    crons = by.get("CronJob", {})
    seen = {}
    for cj in crons.values():
        c = pod_spec(cj)["containers"][0]
        args = c.get("args", [])
        if len(args) != 2 or args[0] != "trigger":
            fail(f"CronJob/{cj['metadata']['name']} runs {args}")
        if cj["spec"].get("concurrencyPolicy") != "Forbid":
            fail(f"CronJob/{cj['metadata']['name']} is not Forbid")
        seen[args[1]] = cj["spec"]["schedule"]
    if seen != SCHEDULES:
        fail(f"cron schedules {seen}, want {SCHEDULES}")
    ok("CronJobs: workers trigger " + ", ".join(f"{k} '{v}'" for k, v in SCHEDULES.items())
       + ", concurrencyPolicy Forbid")

    job = by.get("Job", {}).get("platform-migrate")
    if not job or pod_spec(job)["containers"][0].get("args") != ["migrate", "up"]:
        fail("no Job platform-migrate running `platform migrate up`")
    ok("Job platform-migrate: platform migrate up")

    # The router resolves upstream names and keeps every address as a member: a headless
    # Service answers with the ready pods' addresses (a cluster IP would hide them behind one).
    namespace = svc.get("platform", {}).get("metadata", {}).get("namespace", "default")
    want = {"UPSTREAM_PLATFORM": ("platform", 8080), "UPSTREAM_WORKERS": ("workers", 8090)}
    for var, (name, port) in want.items():
        spec = svc.get(name, {}).get("spec", {})
        if spec.get("clusterIP") != "None":
            fail(f"Service/{name} is not headless (clusterIP: {spec.get('clusterIP')})")
        if port not in {p["port"] for p in spec.get("ports", [])}:
            fail(f"Service/{name} does not serve port {port}")
        expected = f"{name}.{namespace}.svc.cluster.local:{port}"
        if config.get(var) != expected:
            fail(f"{var}={config.get(var)}, want {expected} (the headless Service of this namespace)")
    ok(f"router upstreams {config['UPSTREAM_PLATFORM']}, {config['UPSTREAM_WORKERS']}: "
       "headless Services of this namespace")

    if "replicas" in deps["platform"]["spec"]:
        fail("Deployment/platform sets replicas: every apply would reset its HPA's count")
    ok("Deployment/platform leaves the replica count to its HPA")

    router = deps["router"]
    rc = pod_spec(router)["containers"][0]
    renv = {}
    for ref in rc.get("envFrom", []):
        name = ref.get("configMapRef", {}).get("name", "")
        renv.update(configmaps.get(re.sub(r"-[a-z0-9]{10}$", "", name), {}))
    renv.update({e["name"]: e.get("value") for e in rc.get("env", [])})
    rports = {p["name"]: p["containerPort"] for p in rc.get("ports", [])}
    https_target = next((p["targetPort"] for p in r.get("ports", []) if p["port"] == 443), None)
    https_port = rports.get(https_target) if isinstance(https_target, str) else https_target
    if not renv.get("ROUTER_HTTPS_LISTEN", "").endswith(f":{https_port}"):
        fail(f"ROUTER_HTTPS_LISTEN={renv.get('ROUTER_HTTPS_LISTEN')!r} does not bind the port "
             f"Service/router 443 targets ({https_target} = {https_port})")
    secret_dir = {m["mountPath"] for m in rc.get("volumeMounts", []) if m["name"] == "secrets"}
    for var in ("CERT_ENCRYPTION_KEY_FILE", "REDIS_URL_FILE"):
        if not any(str(renv.get(var, "")).startswith(d + "/") for d in secret_dir):
            fail(f"Deployment/router: {var} is not a file of the router's Secret volume")
    if renv.get("ACME_ENABLED") != "true" or not renv.get("ACME_DIRECTORY_URL", "").startswith("https://"):
        fail("Deployment/router: ACME not enabled with an https:// directory")
    staging_ca = "acme-staging" in renv["ACME_DIRECTORY_URL"]
    if staging_ca and not renv.get("ACME_TRUSTED_ROOTS_FILE"):
        fail("a staging ACME directory without ACME_TRUSTED_ROOTS_FILE: every scan would renew")
    replicas = router["spec"].get("replicas", 1)
    if renv.get("ROUTER_RATE_LIMIT_INSTANCES") != str(replicas):
        fail(f"ROUTER_RATE_LIMIT_INSTANCES={renv.get('ROUTER_RATE_LIMIT_INSTANCES')} but the "
             f"router runs {replicas} replicas")
    ok(f"router: TLS on {renv['ROUTER_HTTPS_LISTEN']} (Service 443 -> {https_target}), sealing key "
       f"and Redis URL from its Secret, ACME {renv['ACME_DIRECTORY_URL']}, rate-limit instances "
       f"= {replicas} replicas")
    print(f"{path}: {passed} checks passed")


if __name__ == "__main__":
    main(sys.argv[1])
