#!/bin/sh
# One-shot set-up of MinIO for tahub (the minio-init service of docker-compose.yml; the same
# steps by hand for any MinIO are in docs/production.md). Idempotent: safe to run again.
#   - the bucket named by TAHUB_STORAGE (s3://<bucket>[/<prefix>]), versioning off;
#   - the hub's own user (TAHUB_S3_ACCESS_KEY / TAHUB_S3_SECRET_KEY) with a policy that
#     reaches that bucket only: read, write, delete, list, multipart (never the admin API).
set -eu

bucket=${TAHUB_STORAGE#s3://}
bucket=${bucket%%/*}
[ -n "$bucket" ] && [ "$bucket" != "$TAHUB_STORAGE" ] || {
  echo "TAHUB_STORAGE must be s3://<bucket>[/<prefix>], not '$TAHUB_STORAGE'" >&2; exit 2; }

mc alias set local "$MINIO_URL" "$MINIO_ROOT_USER" "$(cat /run/secrets/minio_root_password)" >/dev/null
mc mb --ignore-existing "local/$bucket"

policy=/tmp/tahub-hub-policy.json
cat >"$policy" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow",
     "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
     "Resource": ["arn:aws:s3:::$bucket"]},
    {"Effect": "Allow",
     "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
     "Resource": ["arn:aws:s3:::$bucket/*"]}
  ]
}
JSON
mc admin user add local "$TAHUB_S3_ACCESS_KEY" "$TAHUB_S3_SECRET_KEY"
mc admin policy create local tahub-hub "$policy"
if ! mc admin user info local "$TAHUB_S3_ACCESS_KEY" | grep -q 'tahub-hub'; then
  mc admin policy attach local tahub-hub --user "$TAHUB_S3_ACCESS_KEY"
fi
echo "bucket $bucket and user $TAHUB_S3_ACCESS_KEY are ready"
