#!/usr/bin/env python3
"""After `terraform apply` of terraform/aws against moto: check through the AWS API (boto3)
that what the configuration promises was really created.

Usage: assert_moto.py ENDPOINT REGION OUTPUTS_JSON PREFIX

OUTPUTS_JSON is `terraform output -json`; PREFIX is "<project>-<environment>". Prints one line
per check and exits 1 if any failed.
"""

import json
import sys

import boto3

ENDPOINT, REGION, OUTPUTS, PREFIX = sys.argv[1:5]
OUT = {k: v["value"] for k, v in json.load(open(OUTPUTS)).items()}

failures = []
passed = 0


def client(service):
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def check(what, ok, detail=""):
    global passed
    if ok:
        passed += 1
        print(f"ok    {what}")
    else:
        failures.append(what)
        print(f"FAIL  {what} {detail}")


CRON = {
    "process-emails": "rate(5 minutes)",
    "process-donations": "cron(0 * * * ? *)",
    "cleanup-sessions": "cron(0 3 * * ? *)",
    "generate-reports": "cron(0 6 ? * MON *)",
}
SERVICES = ["router", "platform", "workers"]
# Environment variables that must only ever arrive as ECS secrets.
SECRET_NAMES = {
    "DATABASE_URL", "DATABASE_MIGRATION_URL", "REDIS_URL", "EDGE_SIGNING_SECRET",
    "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "CRON_SECRET", "SMTP_URL", "PGPASSWORD",
    "CERT_ENCRYPTION_KEY",
}

# --- Secrets Manager -------------------------------------------------------------------
sm = client("secretsmanager")
kms = client("kms")
key_arn = kms.describe_key(KeyId=f"alias/{PREFIX}")["KeyMetadata"]["Arn"]
secrets = {}
for page in sm.get_paginator("list_secrets").paginate():
    for s in page["SecretList"]:
        secrets[s["Name"]] = s
expected_secrets = [f"{PREFIX}/database/{n}" for n in ("owner", "platform", "router", "workers")] + [
    f"{PREFIX}/{n}" for n in (
        "edge-signing-secret", "cron-secret", "redis-url", "cert-encryption-key",
        "stripe-secret-key", "stripe-webhook-secret", "smtp-url",
    )
]
for name in expected_secrets:
    s = secrets.get(name)
    check(f"secret {name} exists", s is not None)
    if s:
        check(f"secret {name} encrypted with the environment's CMK",
              s.get("KmsKeyId") in (key_arn, key_arn.split("/")[-1], f"alias/{PREFIX}"),
              s.get("KmsKeyId"))

db_endpoint = OUT["database_endpoint"]
for login, user in (("owner", "donations_owner"), ("platform", "platform_web"),
                    ("router", "platform_router"), ("workers", "platform_workers")):
    value = json.loads(sm.get_secret_value(SecretId=f"{PREFIX}/database/{login}")["SecretString"])
    check(f"database/{login} holds username, password and url", set(value) == {"username", "password", "url"})
    check(f"database/{login} is for role {user}", value.get("username") == user, value.get("username"))
    check(f"database/{login} url uses TLS and the RDS endpoint",
          value.get("url", "").startswith(f"postgres://{user}:")
          and f"@{db_endpoint}/" in value["url"] and value["url"].endswith("?sslmode=require"))
    check(f"database/{login} password is generated (40 alphanumerics)",
          len(value.get("password", "")) == 40 and value["password"].isalnum())
passwords = {json.loads(sm.get_secret_value(SecretId=f"{PREFIX}/database/{n}")["SecretString"])["password"]
             for n in ("owner", "platform", "router", "workers")}
check("the four database passwords differ", len(passwords) == 4)
edge = sm.get_secret_value(SecretId=f"{PREFIX}/edge-signing-secret")["SecretString"]
check("EDGE_SIGNING_SECRET generated, 64 characters (the binaries require >= 32)", len(edge) == 64)
cron_secret = sm.get_secret_value(SecretId=f"{PREFIX}/cron-secret")["SecretString"]
check("CRON_SECRET generated, 48 characters (workers require >= 32)", len(cron_secret) == 48)
cert_key = sm.get_secret_value(SecretId=f"{PREFIX}/cert-encryption-key")["SecretString"]
check("CERT_ENCRYPTION_KEY generated: 32 bytes as 64 hex digits (what the router's sealing key takes)",
      len(cert_key) == 64 and all(ch in "0123456789abcdef" for ch in cert_key))
check("CERT_ENCRYPTION_KEY differs from the other generated secrets", cert_key not in passwords | {edge, cron_secret})

# --- ECS ---------------------------------------------------------------------------------
ecs = client("ecs")
cluster = OUT["ecs_cluster"]
svc = {s["serviceName"]: s for s in ecs.describe_services(cluster=cluster, services=SERVICES)["services"]}
for name in SERVICES:
    s = svc.get(name)
    check(f"ECS service {name} exists", s is not None)
    if not s:
        continue
    check(f"{name}: Fargate", s.get("launchType") == "FARGATE")
    net = s["networkConfiguration"]["awsvpcConfiguration"]
    check(f"{name}: no public IP, in the private subnets", net.get("assignPublicIp") == "DISABLED")
    td = ecs.describe_task_definition(taskDefinition=s["taskDefinition"])["taskDefinition"]
    c = td["containerDefinitions"][0]
    env = {e["name"]: e["value"] for e in c.get("environment", [])}
    sec = {e["name"]: e["valueFrom"] for e in c.get("secrets", [])}
    check(f"{name}: no secret in plain environment", not (SECRET_NAMES & set(env)), sorted(SECRET_NAMES & set(env)))
    check(f"{name}: secrets come from Secrets Manager",
          sec and all(v.startswith("arn:aws:secretsmanager:") for v in sec.values()))
    check(f"{name}: DATABASE_URL and the edge/cron secret injected",
          "DATABASE_URL" in sec and ({"EDGE_SIGNING_SECRET", "CRON_SECRET"} & set(sec)))
    check(f"{name}: read-only root filesystem", c.get("readonlyRootFilesystem") is True)
    check(f"{name}: execution role and task role differ",
          td.get("executionRoleArn") and td.get("taskRoleArn") and td["executionRoleArn"] != td["taskRoleArn"])
    check(f"{name}: TENANT_BASE_DOMAIN set", bool(env.get("TENANT_BASE_DOMAIN")))
    operator = {"router": ("ROUTER_OPERATOR_LISTEN", "0.0.0.0:9100"),
                "platform": ("PLATFORM_OPERATOR_LISTEN", "127.0.0.1:9180"),
                "workers": ("WORKERS_OPERATOR_LISTEN", "127.0.0.1:9190")}[name]
    check(f"{name}: operator listener {operator[0]}={operator[1]}", env.get(operator[0]) == operator[1],
          env.get(operator[0]))
    check(f"{name}: container health check `{name} healthcheck --live`",
          c.get("healthCheck", {}).get("command") == ["CMD", f"/usr/local/bin/{name}", "healthcheck", "--live"],
          c.get("healthCheck"))
    if name == "router":
        ports = sorted(lb["containerPort"] for lb in s.get("loadBalancers", []))
        check("router: behind the NLB on container ports 8000 and 8443", ports == [8000, 8443], ports)
        check("router: upstreams by Cloud Map name",
              env.get("UPSTREAM_PLATFORM", "").startswith("platform.") and ".internal:8080" in env["UPSTREAM_PLATFORM"])
        check("router: REDIS_URL for shared rate limits", "REDIS_URL" in sec)
        check("router: ROUTER_RATE_LIMIT_INSTANCES = the service's minimum count (2)",
              env.get("ROUTER_RATE_LIMIT_INSTANCES") == "2", env.get("ROUTER_RATE_LIMIT_INSTANCES"))
        check("router: TLS listener on 8443, the container port the NLB's 443 forwards to",
              env.get("ROUTER_HTTPS_LISTEN") == "0.0.0.0:8443", env.get("ROUTER_HTTPS_LISTEN"))
        check("router: CERT_ENCRYPTION_KEY injected from its secret",
              sec.get("CERT_ENCRYPTION_KEY", "").split(":secret:")[-1].startswith(f"{PREFIX}/cert-encryption-key"),
              sec.get("CERT_ENCRYPTION_KEY"))
        check("router: ACME on, Let's Encrypt production, with a mailto: contact",
              env.get("ACME_ENABLED") == "true"
              and env.get("ACME_DIRECTORY_URL") == "https://acme-v02.api.letsencrypt.org/directory"
              and env.get("ACME_CONTACT", "").startswith("mailto:"),
              {k: v for k, v in env.items() if k.startswith("ACME_")})
    else:
        check(f"{name}: registered in Cloud Map", len(s.get("serviceRegistries", [])) == 1)
        check(f"{name}: not behind a public load balancer", not s.get("loadBalancers"))
    if name == "platform":
        check("platform: Stripe keys and REDIS_URL as secrets",
              {"STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "REDIS_URL"} <= set(sec))
    if name == "workers":
        check("workers: in-process scheduler off (EventBridge runs cron)", env.get("WORKERS_SCHEDULER") == "false")
        check("workers: SMTP_URL as a secret", "SMTP_URL" in sec)

families = {f for f in ecs.list_task_definition_families(status="ACTIVE")["families"]}
for fam in ("migrate", "db-roles", "cron"):
    check(f"task definition {PREFIX}-{fam} exists", f"{PREFIX}-{fam}" in families)
mig = ecs.describe_task_definition(taskDefinition=f"{PREFIX}-migrate")["taskDefinition"]["containerDefinitions"][0]
check("migrate task runs `platform migrate up` with DATABASE_MIGRATION_URL as a secret",
      mig.get("command") == ["migrate", "up"] and "DATABASE_MIGRATION_URL" in {s["name"] for s in mig.get("secrets", [])})

# --- EventBridge Scheduler ------------------------------------------------------------------
sched = client("scheduler")
sqs = client("sqs")
dlq_arn = sqs.get_queue_attributes(QueueUrl=OUT["cron_dead_letter_queue"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
group = f"{PREFIX}-cron"
listed = {s["Name"] for s in sched.list_schedules(GroupName=group)["Schedules"]}
check("exactly the four cron schedules", listed == set(CRON), sorted(listed))
for job, expr in CRON.items():
    s = sched.get_schedule(GroupName=group, Name=job)
    t = s["Target"]
    check(f"schedule {job}: {expr} UTC", s["ScheduleExpression"] == expr and s.get("ScheduleExpressionTimezone") == "UTC",
          s["ScheduleExpression"])
    check(f"schedule {job}: enabled", s.get("State") == "ENABLED")
    check(f"schedule {job}: runs `workers trigger {job}`",
          json.loads(t["Input"]) == {"containerOverrides": [{"name": "workers", "command": ["trigger", job]}]})
    check(f"schedule {job}: ECS task on the cluster, Fargate, private",
          t["Arn"].endswith(f":cluster/{cluster}") and t["EcsParameters"]["LaunchType"] == "FARGATE"
          and t["EcsParameters"]["NetworkConfiguration"]["awsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
          and f"task-definition/{PREFIX}-cron:" in t["EcsParameters"]["TaskDefinitionArn"])
    check(f"schedule {job}: retry policy (3 attempts, bounded event age)",
          t["RetryPolicy"]["MaximumRetryAttempts"] == 3 and 60 <= t["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 3600)
    check(f"schedule {job}: dead-letter queue", t.get("DeadLetterConfig", {}).get("Arn") == dlq_arn)

# --- Security groups ----------------------------------------------------------------------
ec2 = client("ec2")
groups = {g["GroupName"]: g for g in ec2.describe_security_groups(
    Filters=[{"Name": "group-name", "Values": [f"{PREFIX}-*"]}])["SecurityGroups"]}
gid = {n[len(PREFIX) + 1:]: g["GroupId"] for n, g in groups.items()}
name_of = {v: k for k, v in gid.items()}
rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": list(gid.values())}])["SecurityGroupRules"]


def summary(egress):
    out = set()
    for r in rules:
        if r["IsEgress"] != egress:
            continue
        peer = r.get("ReferencedGroupInfo", {}).get("GroupId")
        peer = name_of.get(peer, peer) if peer else r.get("CidrIpv4") or r.get("CidrIpv6")
        out.add((name_of[r["GroupId"]], r["FromPort"], peer))
    return out


ingress = summary(False)
expected_ingress = {
    ("nlb", 80, "0.0.0.0/0"), ("nlb", 443, "0.0.0.0/0"),
    ("router", 8000, "nlb"), ("router", 8443, "nlb"), ("router", 9100, "nlb"),
    ("platform", 8080, "router"), ("workers", 8090, "router"),
    ("database", 5432, "router"), ("database", 5432, "platform"),
    ("database", 5432, "workers"), ("database", 5432, "migrate"),
    ("redis", 6379, "platform"), ("redis", 6379, "router"),
}
check("ingress rules are exactly internet->NLB->router->platform/workers->database/redis",
      ingress == expected_ingress, f"extra={sorted(ingress - expected_ingress)} missing={sorted(expected_ingress - ingress)}")
egress = summary(True)
check("database and redis groups have no egress", not any(g in ("database", "redis") for g, _, _ in egress))
check("only the NLB accepts traffic from the internet",
      {g for g, _, p in ingress if p in ("0.0.0.0/0", "::/0")} == {"nlb"})
check("platform reaches the database and Redis",
      ("platform", 5432, "database") in egress and ("platform", 6379, "redis") in egress)

# --- Load balancer ------------------------------------------------------------------------
elb = client("elbv2")
lb = elb.describe_load_balancers(Names=[f"{PREFIX}-nlb"])["LoadBalancers"][0]
check("NLB is a network load balancer, internet-facing", lb["Type"] == "network" and lb.get("Scheme", "internet-facing") == "internet-facing")
listeners = {li["Port"]: li for li in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]}
check("NLB listens on 80 and 443, TCP (pass-through)",
      sorted(listeners) == [80, 443] and all(li["Protocol"] == "TCP" for li in listeners.values()))
tg_port = {tg["TargetGroupArn"]: tg["Port"] for tg in elb.describe_target_groups(
    LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]}
router_td = ecs.describe_task_definition(taskDefinition=svc["router"]["taskDefinition"])["taskDefinition"]
router_env = {e["name"]: e["value"] for e in router_td["containerDefinitions"][0].get("environment", [])}
for port, var in ((80, "ROUTER_HTTP_LISTEN"), (443, "ROUTER_HTTPS_LISTEN")):
    forwards = [tg_port.get(a.get("TargetGroupArn")) for a in listeners.get(port, {}).get("DefaultActions", [])]
    check(f"NLB {port} forwards to the port the router's {var} binds",
          len(forwards) == 1 and router_env.get(var, "").endswith(f":{forwards[0]}"),
          (forwards, router_env.get(var)))
for tg in elb.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]:
    attrs = {a["Key"]: a["Value"] for a in elb.describe_target_group_attributes(
        TargetGroupArn=tg["TargetGroupArn"])["Attributes"]}
    check(f"target group {tg['TargetGroupName']}: TCP to IP targets", tg["Protocol"] == "TCP" and tg["TargetType"] == "ip")
    check(f"target group {tg['TargetGroupName']}: preserve_client_ip", attrs.get("preserve_client_ip.enabled") == "true", attrs)
    check(f"target group {tg['TargetGroupName']}: health check /health on the operator port",
          tg.get("HealthCheckPath") == "/health" and str(tg.get("HealthCheckPort")) == "9100")

# --- RDS ----------------------------------------------------------------------------------
rds = client("rds")
db = rds.describe_db_instances(DBInstanceIdentifier=f"{PREFIX}-postgres")["DBInstances"][0]
check("RDS PostgreSQL, Multi-AZ, encrypted", db["Engine"] == "postgres" and db["MultiAZ"] and db["StorageEncrypted"])
check("RDS backups kept >= 7 days (point-in-time recovery)", db["BackupRetentionPeriod"] >= 7)
check("RDS deletion protection on", db["DeletionProtection"] is True)
check("RDS not publicly accessible", db["PubliclyAccessible"] is False)
pg = db["DBParameterGroups"][0]["DBParameterGroupName"]
params = {p["ParameterName"]: p.get("ParameterValue") for p in rds.describe_db_parameters(DBParameterGroupName=pg)["Parameters"]}
check("RDS parameter group forces TLS", params.get("rds.force_ssl") == "1", params.get("rds.force_ssl"))

# --- Cloud Map, DNS, logs ----------------------------------------------------------------
sd = client("servicediscovery")
ns = [n for n in sd.list_namespaces()["Namespaces"] if n["Name"] == OUT["service_discovery_namespace"]]
check("Cloud Map private namespace exists", len(ns) == 1)
if ns:
    names = {s["Name"] for s in sd.list_services(Filters=[{"Name": "NAMESPACE_ID", "Values": [ns[0]["Id"]]}])["Services"]}
    check("Cloud Map services platform and workers", names == {"platform", "workers"}, names)

r53 = client("route53")
zone = [z for z in r53.list_hosted_zones()["HostedZones"]][0]
records = {(r["Name"].rstrip(".").replace("\\052", "*"), r["Type"])
           for r in r53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]}
base = zone["Name"].rstrip(".")
for n in (base, f"*.{base}", f"admin.{base}"):
    check(f"DNS A record {n}", (n, "A") in records)
check("DNS CAA record on the base domain", (base, "CAA") in records)

logs = client("logs")
for service, group_name in OUT["log_groups"].items():
    g = logs.describe_log_groups(logGroupNamePrefix=group_name)["logGroups"]
    check(f"log group {group_name}: retention and KMS",
          len(g) == 1 and g[0].get("retentionInDays") and g[0].get("kmsKeyId"))

events = client("events")
rule = events.describe_rule(Name=f"{PREFIX}-cron-failed")
check("cron-failure rule matches stopped cron tasks", '"cron-"' in rule["EventPattern"])

print(f"{passed} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
