#!/usr/bin/env bash
# Checks terraform/ (AWS and Leaseweb) on a fresh Debian machine, offline but for PyPI:
#   1. terraform fmt -check -recursive
#   2. AWS: init from the machine image's provider mirror (/opt/tf-plugins) + validate
#   3. AWS: apply environments/production.tfvars against moto_server on loopback, assert the
#      result through the AWS API (terraform/checks/assert_moto.py), then tear down the way an
#      operator does (deletion protection off, destroy) and require an empty state
#   4. Leaseweb: every type and argument against the provider's schema (python-hcl2)
#   5. checkov on both trees (runs while 3 waits on the emulator)
# Files moto cannot apply are validated only; they are listed in VALIDATE_ONLY below.
# Any failed check ends the script with a non-zero exit and a line starting with "!!!".
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
start=$(date +%s)
step() { printf '\n--- terraform: %s (t+%ss)\n' "$*" "$(($(date +%s) - start))"; }
die() {
  printf '\n!!! TERRAFORM CHECK FAILED: %s\n' "$*" >&2
  exit 1
}

# Not applied against moto: ElastiCache (moto answers 404 for the member cluster while creating
# the replication group) and Application Auto Scaling (registering the ECS target hangs).
VALIDATE_ONLY=(elasticache.tf autoscaling.tf)

mirror=${TF_PLUGIN_MIRROR:-/opt/tf-plugins}
schema=${LEASEWEB_SCHEMA:-$root/../shared/reference/leaseweb-provider/schema.json}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/donations-terraform-ci
work=$(mktemp -d "${TMPDIR:-/tmp}/terraform-ci.XXXXXX")
moto_pid=""
checkov_pid=""

cleanup() {
  for pid in "$moto_pid" "$checkov_pid"; do
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

# Runs a command with its output in $work/<name>.log; on failure shows the end of it and stops.
run_logged() {
  local name=$1
  shift
  if ! "$@" >"$work/$name.log" 2>&1; then
    tail -n 60 "$work/$name.log" >&2
    die "$name: '$*' failed (last lines above)"
  fi
}

step "tools"
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0
export TF_CLI_ARGS_init=-no-color TF_CLI_ARGS_validate=-no-color TF_CLI_ARGS_apply=-no-color TF_CLI_ARGS_destroy=-no-color
export TF_CLI_CONFIG_FILE=$work/terraform.rc
cat >"$TF_CLI_CONFIG_FILE" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/hashicorp/aws"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/aws"]
  }
}
RC
if ! command -v terraform >/dev/null; then
  cat >&2 <<'MSG'
!!!
!!! terraform is NOT INSTALLED on this machine.
!!! The machine image ships terraform 1.11 (/usr/local/bin/terraform) and the hashicorp/aws
!!! provider mirror (/opt/tf-plugins); neither can be downloaded here. The terraform checks
!!! cannot run without them.
!!!
MSG
  die "terraform missing"
fi
terraform version | sed -n 1p
[[ -d $mirror/registry.terraform.io/hashicorp/aws ]] ||
  die "no hashicorp/aws provider in the filesystem mirror $mirror (set TF_PLUGIN_MIRROR)"
[[ -f $schema ]] || die "Leaseweb provider schema not found at $schema (set LEASEWEB_SCHEMA)"

if ! python3 -m venv --help >/dev/null 2>&1; then
  ops/scripts/install-deps.sh python3-venv
fi
if [[ ! -x $cache/venv/bin/python ]]; then
  python3 -m venv "$cache/venv"
fi
py=$cache/venv/bin/python
run_logged pip-tools "$py" -m pip install -q --disable-pip-version-check -r terraform/checks/requirements.txt
# python-hcl2 and checkov's bundled fork both install a module named hcl2: keep ours apart.
run_logged pip-hcl2 "$py" -m pip install -q --disable-pip-version-check --upgrade \
  --target "$cache/python-hcl2" python-hcl2==8.1.4


step "checkov (background)"
# Every skip needs a reason after the check id.
if grep -rn --include='*.tf' 'checkov:skip=' terraform | grep -vE 'checkov:skip=CKV2?_[A-Z0-9_]+:[^ ].{9,}'; then
  die "a checkov skip above has no reason"
fi
nice -n 10 "$cache/venv/bin/checkov" --quiet --compact --framework terraform --download-external-modules false \
  -d terraform/aws -d terraform/modules/ecs-task -d terraform/leaseweb -d terraform/modules/leaseweb-host \
  >"$work/checkov.log" 2>&1 &
checkov_pid=$!

step "terraform fmt -check -recursive"
terraform fmt -check -recursive -diff terraform || die "terraform fmt: files above need 'terraform fmt -recursive terraform'"

step "leaseweb: types and arguments against provider schema $(basename "$(dirname "$schema")")"
PYTHONPATH=$cache/python-hcl2 "$py" terraform/checks/leaseweb_schema.py "$schema" \
  terraform/leaseweb terraform/modules/leaseweb-host || die "leaseweb schema check"
# The checker must catch the mistakes it exists for (the seed's and upstream examples' ones).
mkdir -p "$work/mistakes"
cp terraform/checks/fixtures/leaseweb-mistakes.tf.txt "$work/mistakes/mistakes.tf"
if PYTHONPATH=$cache/python-hcl2 "$py" terraform/checks/leaseweb_schema.py "$schema" "$work/mistakes" >"$work/mistakes.log"; then
  die "the leaseweb checker accepted terraform/checks/fixtures/leaseweb-mistakes.tf.txt"
fi
caught=$(grep -c '^FAIL' "$work/mistakes.log")
[[ $caught -ge 15 ]] || die "the leaseweb checker caught only $caught of the 15 planted mistakes"
echo "leaseweb checker self-test: $caught planted mistakes caught"

step "aws: init (local mirror) + validate"
export TF_DATA_DIR=$work/aws-data
run_logged aws-init terraform -chdir=terraform/aws init -backend=false -lockfile=readonly
terraform -chdir=terraform/aws validate -no-color || die "terraform validate terraform/aws"

step "aws: apply against moto_server (validate-only: ${VALIDATE_ONLY[*]})"
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
endpoint=http://127.0.0.1:$port
MOTO_IAM_LOAD_MANAGED_POLICIES=true "$cache/venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 1 60); do
  "$py" -c "import urllib.request as u; u.urlopen('$endpoint/moto-api/', timeout=1)" 2>/dev/null && break
  kill -0 "$moto_pid" 2>/dev/null || die "moto_server exited: $(tail -n 5 "$work/moto.log")"
  sleep 0.5
done

tree=$work/tree
mkdir -p "$tree"
cp -r terraform/aws terraform/modules "$tree/"
rm -rf "$tree/aws/.terraform"
for f in "${VALIDATE_ONLY[@]}"; do
  [[ -f $tree/aws/$f ]] || die "validate-only file $f is missing from terraform/aws"
  rm "$tree/aws/$f"
done
# An override file points the unchanged provider block at the emulator.
{
  cat <<'HCL'
provider "aws" {
  access_key                  = "moto"
  secret_key                  = "moto"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  endpoints {
HCL
  for svc in ec2 elbv2 ecs ecr iam kms logs cloudwatch secretsmanager rds servicediscovery \
    scheduler sqs sns route53 events sts elasticache applicationautoscaling; do
    printf '    %-16s = "%s"\n' "$svc" "$endpoint"
  done
  printf '  }\n}\n'
} >"$tree/aws/moto_override.tf"
cat >"$tree/aws/ci.auto.tfvars" <<'HCL'
base_domain      = "ci.donations.test"
image_tag        = "ci-0000000"
redis_auth_token = "ci-only-redis-token-0123456789"
HCL
export AWS_EC2_METADATA_DISABLED=true
export TF_DATA_DIR=$work/moto-data
tf() { terraform -chdir="$tree/aws" "$@"; }
run_logged moto-init tf init -backend=false
# Proves that nothing applied refers to the validate-only files.
tf validate -no-color || die "terraform/aws without ${VALIDATE_ONLY[*]} does not validate"
run_logged moto-apply tf apply -auto-approve -parallelism=30 -var-file=environments/production.tfvars
grep -E '^Apply complete' "$work/moto-apply.log"
applied=$(tf state list | grep -vcE '^(data\.|module\.[a-z_]+\.data\.)' || true)
echo "managed resources applied: $applied"
tf output -json >"$work/outputs.json"

step "aws: assert through the AWS API (boto3 against moto)"
"$py" terraform/checks/assert_moto.py "$endpoint" us-east-1 "$work/outputs.json" donations-production ||
  die "assertions against the applied infrastructure"

step "aws: tear down as an operator does (deletion protection off, then destroy)"
run_logged moto-unprotect tf apply -auto-approve -parallelism=30 -refresh=false \
  -var-file=environments/production.tfvars -var deletion_protection=false \
  -target=aws_db_instance.main -target=aws_lb.public
grep -E '^Apply complete' "$work/moto-unprotect.log"
run_logged moto-destroy tf destroy -auto-approve -parallelism=30 -refresh=false \
  -var-file=environments/production.tfvars -var deletion_protection=false
grep -E '^Destroy complete' "$work/moto-destroy.log"
left=$(tf state list | wc -l)
[[ $left -eq 0 ]] || die "destroy left $left resources in the state"
kill "$moto_pid"
wait "$moto_pid" 2>/dev/null || true
moto_pid=""

step "checkov results"
status=0
wait "$checkov_pid" || status=$?
checkov_pid=""
grep -E '^(terraform scan results|Passed checks|Check: |	FAILED|.*FAILED for resource)' "$work/checkov.log" || true
if [[ $status -ne 0 ]]; then
  cat "$work/checkov.log" >&2
  die "checkov found failing checks (exit $status)"
fi
skips=$(grep -rho --include='*.tf' 'checkov:skip=CKV2\?_[A-Z0-9_]*' terraform | sort -u | wc -l)
echo "checkov: clean; $skips distinct checks skipped, each with its reason beside it"

step "done in $(($(date +%s) - start))s"
