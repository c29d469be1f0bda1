#!/usr/bin/env bash
# Usage: hack/object-store-env.sh OVERLAY ENV_FILE
# Makes sure ENV_FILE (manifests/overlays/<overlay>/object-store.env, untracked) holds the object
# store credentials the overlay's secretGenerator turns into Secrets:
#   AWS_ACCESS_KEY_ID=...
#   AWS_SECRET_ACCESS_KEY=...
# An existing file is never changed. On kind (OVERLAY=kind) a missing one is written, mode 600,
# from Kubeflow Pipelines' own MinIO Secret: kubeflow/mlpipeline-minio-artifact, keys accesskey
# and secretkey (kubeflow/pipelines 2.5.0, manifests/kustomize/third-party/minio/base/
# mlpipeline-minio-artifact-secret.yaml, read by minio-deployment.yaml). For any other overlay a
# missing file is an error that says what to write.
set -euo pipefail
shopt -s inherit_errexit

if [[ $# -ne 2 ]]; then
  echo "usage: $0 OVERLAY ENV_FILE" >&2
  exit 2
fi
overlay=$1
file=$2

if [[ -e $file ]]; then
  echo "$file exists: kept as it is"
  exit 0
fi
if [[ $overlay != kind ]]; then
  cat >&2 <<MESSAGE
error: $file is missing. Write it (chmod 600; it is gitignored, never commit it) with the
object store credentials for overlay '$overlay', one per line:
  AWS_ACCESS_KEY_ID=<access key>
  AWS_SECRET_ACCESS_KEY=<secret key>
then run the command again.
MESSAGE
  exit 1
fi

secret_key() {
  local encoded
  encoded=$(kubectl get secret mlpipeline-minio-artifact -n kubeflow -o "jsonpath={.data.$1}")
  if [[ -z $encoded ]]; then
    echo "error: Secret kubeflow/mlpipeline-minio-artifact has no key '$1'; is Kubeflow Pipelines installed (make platform)?" >&2
    return 1
  fi
  base64 -d <<<"$encoded"
}
access_key=$(secret_key accesskey)
secret_key=$(secret_key secretkey)

# mktemp makes the file with mode 600 beside the target; ln then refuses to replace a file that
# appeared meanwhile, so an existing file is never overwritten.
tmp=$(mktemp "$(dirname "$file")/.object-store.env.XXXXXX")
trap 'rm -f "$tmp"' EXIT
printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$access_key" "$secret_key" >"$tmp"
chmod 600 "$tmp"
ln "$tmp" "$file"
echo "wrote $file from Secret kubeflow/mlpipeline-minio-artifact (KFP's MinIO)"
