#!/usr/bin/env bash
# Makes sure the suite's real services are there: installs PostgreSQL, Redis and Chromium from Debian when
# missing (as root), and starts PostgreSQL and Redis on loopback when they are not running.
set -euo pipefail

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v chromium >/dev/null || need+=(chromium)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
command -v psql >/dev/null || need+=(postgresql-client)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing Debian packages: ${need[*]} (run 'sudo apt-get install ${need[*]}' or run make test as root)" >&2
    exit 1
  fi
  echo "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432; then
  echo "starting PostgreSQL"
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  if [[ -z "$version" ]]; then echo "no PostgreSQL cluster found under /etc/postgresql" >&2; exit 1; fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 50); do port_open 5432 && break; sleep 0.2; done
fi
# The tests connect as postgres/postgres over TCP; a fresh Debian cluster asks for a password there.
if ! PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- psql -q -c "ALTER USER postgres PASSWORD 'postgres'"
  fi
  PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null \
    || { echo "cannot log in to PostgreSQL on 127.0.0.1:5432 as postgres/postgres" >&2; exit 1; }
fi

if ! port_open 6379; then
  echo "starting Redis"
  mkdir -p /tmp/arena-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/arena-redis --logfile /tmp/arena-redis/redis.log
  for _ in $(seq 50); do port_open 6379 && break; sleep 0.2; done
fi
port_open 6379 || { echo "Redis is not answering on 127.0.0.1:6379" >&2; exit 1; }
echo "services ready: PostgreSQL 127.0.0.1:5432, Redis 127.0.0.1:6379, $(command -v chromium)"
