#!/usr/bin/env bash
# kafka-init: SCRAM credentials and ACLs of the compose stack, applied idempotently.
#
# Runs in the apache/kafka image inside the kafka container's network namespace
# (network_mode: service:kafka), so it reaches the broker's ADMIN listener on
# localhost:9095 — PLAINTEXT, bound to the container's loopback only, its principal
# User:ANONYMOUS the one super user.  Nothing outside the kafka container can use it.
#
#   User:amplimon    every topic amplimon.* and every group amplimon* (worker, sink,
#                    archive, topics create)
#   User:<platform>  Write and Describe on amplimon.exposure.<platform> and
#                    amplimon.ranking.<platform> only: a platform cannot read anything,
#                    nor write another platform's topics, the outputs or the checkpoints
#
# Platforms: one "NAME PASSWORD" line each in /run/secrets/kafka_platforms
# (deploy/make_secrets.py add-platform NAME).  Re-run after adding one:
#   docker compose up kafka-init
set -euo pipefail

BIN=${KAFKA_BIN:-/opt/kafka/bin}  # the apache/kafka image's scripts
ADMIN=localhost:9095
EXPOSURE_PREFIX=${EXPOSURE_PREFIX:-amplimon.exposure}
RANKING_PREFIX=${RANKING_PREFIX:-amplimon.ranking}
AMPLIMON_PASSWORD_FILE=${AMPLIMON_PASSWORD_FILE:-/run/secrets/kafka_amplimon_password}
PLATFORMS_FILE=${PLATFORMS_FILE:-/run/secrets/kafka_platforms}

scram() {  # scram USER PASSWORD
  "$BIN/kafka-configs.sh" --bootstrap-server "$ADMIN" --alter --entity-type users \
    --entity-name "$1" --add-config "SCRAM-SHA-512=[iterations=8192,password=$2]" >/dev/null
  echo "kafka-init: SCRAM-SHA-512 credential of User:$1"
}

acl() {
  "$BIN/kafka-acls.sh" --bootstrap-server "$ADMIN" --add --force "$@" >/dev/null
}

password=$(head -n 1 "$AMPLIMON_PASSWORD_FILE")
scram amplimon "$password"
acl --allow-principal User:amplimon --operation All \
    --topic amplimon. --resource-pattern-type prefixed
acl --allow-principal User:amplimon --operation All \
    --group amplimon --resource-pattern-type prefixed
echo "kafka-init: User:amplimon may use every amplimon.* topic and amplimon* group"

count=0
while read -r name secret _; do
  [[ -z "${name:-}" || "$name" == \#* ]] && continue
  if [[ ! "$name" =~ ^[a-z0-9][a-z0-9_-]{0,62}$ || -z "${secret:-}" ]]; then
    echo "kafka-init: $PLATFORMS_FILE: bad line for '$name' (want: NAME PASSWORD)" >&2
    exit 2
  fi
  scram "$name" "$secret"
  acl --allow-principal "User:$name" --operation Write --operation Describe \
      --topic "$EXPOSURE_PREFIX.$name" --topic "$RANKING_PREFIX.$name"
  echo "kafka-init: User:$name may write $EXPOSURE_PREFIX.$name and $RANKING_PREFIX.$name only"
  count=$((count + 1))
done < "$PLATFORMS_FILE"
echo "kafka-init: done ($count platform principals)"
