#!/bin/sh
# Makes what docker-compose.yml needs and the repository never holds: deploy/.env (from
# .env.example, placeholders replaced by fresh random passwords) and deploy/secrets/:
#   tahub_signing_key.pem   the hubs' shared Ed25519 token-signing key (TAHUB_SIGNING_KEY_FILE)
#   postgres_password       also written into TAHUB_DATABASE_URL in .env
#   minio_root_password     MinIO's administrator (the hub uses its own user, see minio/init.sh)
#   minio_kms_key           the key MinIO encrypts objects with (TAHUB_S3_SSE=s3)
#   keycloak.env            Keycloak's first administrator password
# Existing files are kept, so running it again changes nothing. Needs openssl.
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
random() { openssl rand -hex 24; }

[ -s secrets/tahub_signing_key.pem ] \
  || openssl genpkey -algorithm ed25519 -out secrets/tahub_signing_key.pem
[ -s secrets/postgres_password ] || random >secrets/postgres_password
[ -s secrets/minio_root_password ] || random >secrets/minio_root_password
[ -s secrets/minio_kms_key ] \
  || printf 'tahub-key:%s\n' "$(openssl rand -base64 32)" >secrets/minio_kms_key
[ -s secrets/keycloak.env ] \
  || printf 'KC_BOOTSTRAP_ADMIN_PASSWORD=%s\n' "$(random)" >secrets/keycloak.env
if [ ! -e .env ]; then
  sed -e "s/change-me-postgres/$(cat secrets/postgres_password)/" \
      -e "s/change-me-s3/$(random)/" .env.example >.env
  echo "wrote deploy/.env: now set TAHUB_PUBLIC_URL and TAHUB_S3_PUBLIC_ENDPOINT in it"
fi

# Compose mounts the secrets as they are (owner and mode). PostgreSQL and MinIO read theirs
# as root; the hub runs as uid 10001, so its key goes to that uid when this runs as root.
# The rest stays yours (under sudo: the calling user's), for `docker compose` to read.
chmod 0700 secrets
chmod 0600 secrets/* .env
if [ "$(id -u)" = 0 ]; then
  if [ -n "${SUDO_UID:-}" ]; then
    chown "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" secrets secrets/* .env
  fi
  chown 10001:10001 secrets/tahub_signing_key.pem
  chmod 0400 secrets/tahub_signing_key.pem
else
  chmod 0644 secrets/tahub_signing_key.pem
  echo "secrets/tahub_signing_key.pem is readable by every user of this host (the hub's" \
       "uid 10001 must read it); run this as root (sudo) to give it to uid 10001 alone" >&2
fi

if grep -q 'change-me' .env; then
  echo "deploy/.env still has a change-me placeholder: replace it" >&2
  exit 1
fi
