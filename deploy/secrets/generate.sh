#!/bin/sh
# Create the secret files docker-compose.yml expects, owner-only, without overwriting any.
# Paste the Loop webhook secret(s) from Loop Admin > Developer Tools into
# loop_webhook_secrets yourself (one per line); the rest are random.
set -eu
cd "$(dirname "$0")"
umask 077
rand() { openssl rand -hex 32 2>/dev/null || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
make_secret() { [ -s "$1" ] || rand > "$1"; }
for name in postgres_password api_tokens metrics_token khaos_channel_password \
            audit_hmac_key grafana_admin_password; do
  make_secret "$name"
done
[ -s database_url ] || printf 'postgresql+psycopg://returnbridge:%s@postgres:5432/returnbridge\n' \
  "$(cat postgres_password)" > database_url
[ -e loop_webhook_secrets ] || : > loop_webhook_secrets
# The directory is yours only; the files must be readable inside the containers, which run
# as other users (uid 10001 for returnbridge, 65534 for Prometheus, 472 for Grafana).
chmod 700 .
chmod 444 postgres_password api_tokens metrics_token khaos_channel_password \
  audit_hmac_key grafana_admin_password database_url
chmod 644 loop_webhook_secrets
echo "secrets in $(pwd); now put your Loop webhook secret(s) into loop_webhook_secrets"
