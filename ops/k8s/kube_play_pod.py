"""Builds the `podman kube play` test pod from a rendered overlay:

  python3 ops/k8s/kube_play_pod.py RENDERED.yaml OUT.yaml --secrets DIR --port P --operator-port Q \
      --platform-image IMG --postgres-image IMG --redis-image IMG \
      --postgres-user UID:GID --redis-user UID:GID --repo DIR

One pod holds the platform Deployment's container and the migration Job's container exactly as
rendered (command, environment, probes, security context, mounts), next to PostgreSQL, Redis and
the login-role one-shot (ops/compose/db-setup.sh); they talk over localhost, since Service names
do not resolve under kube play. The pod restarts failed containers (OnFailure), so the migration
and the login roles are retried until PostgreSQL is up, as a Job's retries would.

What it changes, and why (podman 4.3's kube play, checked on this machine):
  - image names -> the locally built images;
  - Secret volumes -> hostPath folders of test secrets (podman writes Secret volumes
    base64-encoded and crashes on a secret volume without `optional`);
  - envFrom ConfigMap -> the same variables spelled out (envFrom was not applied);
  - the platform's port published on 127.0.0.1 (hostPort) for the test to probe.
"""

import argparse
import copy

import yaml


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rendered")
    ap.add_argument("out")
    ap.add_argument("--secrets", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--operator-port", type=int, required=True)
    ap.add_argument("--platform-image", required=True)
    ap.add_argument("--postgres-image", required=True)
    ap.add_argument("--redis-image", required=True)
    ap.add_argument("--postgres-user", required=True)
    ap.add_argument("--redis-user", required=True)
    ap.add_argument("--repo", required=True)
    a = ap.parse_args()

    docs = [d for d in yaml.safe_load_all(open(a.rendered)) if d]
    find = lambda kind, name: next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
    deployment = find("Deployment", "platform")
    job = find("Job", "platform-migrate")
    configmaps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}

    spec = copy.deepcopy(deployment["spec"]["template"]["spec"])
    job_spec = job["spec"]["template"]["spec"]
    volumes = {}

    def adopt(container, pod_volumes):
        c = copy.deepcopy(container)
        c["image"] = a.platform_image
        env = []
        for src in c.pop("envFrom", []):
            data = configmaps[src["configMapRef"]["name"]]
            env += [{"name": k, "value": v} for k, v in sorted(data.items())]
        c["env"] = env + c.get("env", [])
        for v in pod_volumes:
            if "secret" in v:
                volumes[v["name"]] = {"name": v["name"], "hostPath": {
                    "path": f"{a.secrets}/{v['secret']['secretName']}", "type": "Directory"}}
            else:
                volumes[v["name"]] = v
        return c

    platform = adopt(spec["containers"][0], spec.get("volumes", []))
    # The API port and the private operator port, each published on loopback only.
    for p in platform["ports"]:
        host = {"http": a.port, "operator": a.operator_port}.get(p.get("name"))
        if host is not None:
            p["hostPort"] = host
            p["hostIP"] = "127.0.0.1"
    # Same mount name, other Secret: give the Job's secret volume its own name.
    job_container = copy.deepcopy(job_spec["containers"][0])
    job_volumes = copy.deepcopy(job_spec.get("volumes", []))
    for v in job_volumes:
        v["name"] = "migrate-" + v["name"]
    for m in job_container.get("volumeMounts", []):
        m["name"] = "migrate-" + m["name"]
    migrate = adopt(job_container, job_volumes)

    def peer(name, image, user, env, **extra):
        uid, gid = (int(x) for x in user.split(":"))
        c = {"name": name, "image": image, "env": [{"name": k, "value": v} for k, v in env.items()],
             "securityContext": {"runAsUser": uid, "runAsGroup": gid,
                                 "allowPrivilegeEscalation": False,
                                 "capabilities": {"drop": ["ALL"]}},
             "volumeMounts": [{"name": "pg-secrets", "mountPath": "/run/secrets", "readOnly": True}]}
        c.update(extra)
        return c

    volumes["pg-secrets"] = {"name": "pg-secrets",
                             "hostPath": {"path": f"{a.secrets}/peers", "type": "Directory"}}
    for f, src in (("db-setup.sh", "ops/compose/db-setup.sh"),
                   ("login-roles.sql", "ops/dev/login-roles.sql")):
        volumes[f.replace(".", "-")] = {"name": f.replace(".", "-"),
                                        "hostPath": {"path": f"{a.repo}/{src}", "type": "File"}}
    postgres = peer("postgres", a.postgres_image, a.postgres_user,
                    {"POSTGRES_DB": "platform",
                     "POSTGRES_PASSWORD_FILE": "/run/secrets/pg_superuser_password"})
    redis = peer("redis", a.redis_image, a.redis_user,
                 {"REDIS_PASSWORD_FILE": "/run/secrets/redis_password"})
    db_setup = peer("db-setup", a.postgres_image, a.postgres_user,
                    {"PGHOST": "127.0.0.1", "SEED_DEMO": "0"},
                    command=["/bin/sh", "/setup/db-setup.sh"])
    db_setup["volumeMounts"] += [
        {"name": "db-setup-sh", "mountPath": "/setup/db-setup.sh", "readOnly": True},
        {"name": "login-roles-sql", "mountPath": "/setup/login-roles.sql", "readOnly": True}]

    spec["containers"] = [postgres, redis, migrate, db_setup, platform]
    spec["volumes"] = list(volumes.values())
    spec["restartPolicy"] = "OnFailure"
    spec.pop("topologySpreadConstraints", None)
    spec.pop("serviceAccountName", None)
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "platform-kubeplay",
                        "labels": deployment["spec"]["template"]["metadata"]["labels"]},
           "spec": spec}
    with open(a.out, "w") as f:
        yaml.safe_dump(pod, f, sort_keys=False)


if __name__ == "__main__":
    main()
