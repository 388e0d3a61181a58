#!/usr/bin/env bash
# vulncheck.sh runs govulncheck (a go tool dependency of the module) over
# every package. vuln.go.dev is not reachable from this project's machines
# (only the Go module proxy is), so by default the vulnerability database is
# built locally from the OSV reports in golang.org/x/vulndb, fetched through
# the module proxy, with that module's own cmd/indexdb. The database lands in
# .peers/vulndb/<version> (gitignored); the first build takes a few minutes,
# later runs reuse it.
#
#   scripts/vulncheck.sh                       # local database from the newest golang.org/x/vulndb
#   VULNDB_VERSION=v0.0.0-2026... scripts/vulncheck.sh   # a pinned snapshot
#   VULNDB=https://vuln.go.dev scripts/vulncheck.sh      # where the real database is reachable
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

if [[ -z "${VULNDB:-}" ]]; then
	version=${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018} # pinned: a new report must not turn a build red by itself
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	# A scratch module, so that resolving vulndb touches nothing here.
	(cd "$tmp" && $GO mod init vulndb.local >/dev/null 2>&1)
	info=$(cd "$tmp" && GOFLAGS=-mod=mod $GO mod download -json "golang.org/x/vulndb@$version")
	dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$info")
	resolved=$(sed -n 's/^[[:space:]]*"Version": "\(.*\)",$/\1/p' <<<"$info")
	if [[ -z "$dir" || -z "$resolved" ]]; then
		echo "vulncheck: could not fetch golang.org/x/vulndb@$version through the module proxy:" >&2
		echo "$info" >&2
		exit 1
	fi
	db="$PWD/.peers/vulndb/$resolved"
	if [[ ! -f "$db/index/db.json" ]]; then
		echo "vulncheck: building the vulnerability database from golang.org/x/vulndb@$resolved (once; a few minutes)"
		rm -rf "$db.tmp"
		(cd "$tmp" && $GO run "golang.org/x/vulndb/cmd/indexdb@$resolved" -vulns "$dir/data/osv" -out "$db.tmp")
		mv "$db.tmp" "$db"
	fi
	VULNDB="file://$db"
fi
echo "vulncheck: govulncheck against $VULNDB"
exec $GO tool govulncheck -db "$VULNDB" ./...
