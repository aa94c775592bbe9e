#!/usr/bin/env bash
# Write the secrets deploy/compose.yaml reads, as files in a folder only the owner may enter (default
# deploy/secrets/, which git ignores): a random PostgreSQL password, the engine's database URL holding it, and
# SeaweedFS's S3 identity (an access key and secret key for the engine's lake endpoint). Existing files are kept.
# The files themselves are readable (0444) because the containers' users differ from yours: the folder's 0700
# is what keeps them private on the host.
set -euo pipefail

DIR=${TWIN_SECRETS_DIR:-$(cd "$(dirname "$0")" && pwd)/secrets}
install -d -m 0700 "$DIR"
random() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
write() {  # write NAME CONTENT: only when NAME does not exist yet
    if [ ! -e "$DIR/$1" ]; then
        (umask 0222 && printf '%s' "$2" >"$DIR/$1")
        echo "wrote $DIR/$1"
    fi
}

[ -e "$DIR/postgres-password" ] || write postgres-password "$(random)"
password=$(cat "$DIR/postgres-password")
write database-url "postgresql+psycopg://twin:${password}@postgres:5432/twin"
write s3.json "{\"identities\": [{\"name\": \"twinengine\", \"credentials\": [{\"accessKey\": \"twin$(random | cut -c1-12)\", \"secretKey\": \"$(random)\"}], \"actions\": [\"Admin\", \"Read\", \"Write\", \"List\", \"Tagging\"]}]}"
