-- 0001: units, attempts, steps, console, artifacts, catalog, pools, slot health.

CREATE TABLE units (
	serial     TEXT PRIMARY KEY,
	protocol   TEXT NOT NULL DEFAULT '',
	chip       TEXT NOT NULL DEFAULT '',
	revision   TEXT NOT NULL DEFAULT '',
	model      TEXT NOT NULL DEFAULT '',
	first_seen INTEGER NOT NULL, -- unix milliseconds
	last_seen  INTEGER NOT NULL
);

CREATE TABLE attempts (
	id             INTEGER PRIMARY KEY,
	unit_serial    TEXT REFERENCES units(serial),
	slot           INTEGER NOT NULL,
	slot_name      TEXT NOT NULL DEFAULT '',
	recipe         TEXT NOT NULL DEFAULT '',
	recipe_version INTEGER NOT NULL DEFAULT 0,
	recipe_sha256  TEXT NOT NULL DEFAULT '',
	revision       TEXT NOT NULL DEFAULT '',
	image_sha256   TEXT NOT NULL DEFAULT '',
	image_version  TEXT NOT NULL DEFAULT '',
	strategy       TEXT NOT NULL DEFAULT '',
	outcome        TEXT NOT NULL DEFAULT 'running'
		CHECK (outcome IN ('running', 'passed', 'failed', 'interrupted', 'refused')),
	class          TEXT NOT NULL DEFAULT '',
	fault          TEXT NOT NULL DEFAULT ''
		CHECK (fault IN ('', 'unit', 'station', 'refused')),
	reason         TEXT NOT NULL DEFAULT '',
	hint           TEXT NOT NULL DEFAULT '',
	last_step      TEXT NOT NULL DEFAULT '',
	bytes_written  INTEGER NOT NULL DEFAULT 0,
	operator       TEXT NOT NULL DEFAULT '',
	started_at     INTEGER NOT NULL,
	finished_at    INTEGER
);
CREATE INDEX attempts_unit ON attempts(unit_serial, started_at);
CREATE INDEX attempts_slot ON attempts(slot, finished_at);
CREATE INDEX attempts_started ON attempts(started_at);
CREATE INDEX attempts_running ON attempts(outcome) WHERE outcome = 'running';

CREATE TABLE steps (
	attempt_id  INTEGER NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,
	seq         INTEGER NOT NULL,
	name        TEXT NOT NULL,
	strategy    TEXT NOT NULL DEFAULT '',
	started_at  INTEGER NOT NULL,
	finished_at INTEGER,
	outcome     TEXT NOT NULL DEFAULT '',
	detail      TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (attempt_id, seq)
);

CREATE TABLE console (
	attempt_id INTEGER NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,
	seq        INTEGER NOT NULL,
	data       BLOB NOT NULL,
	PRIMARY KEY (attempt_id, seq)
);

CREATE TABLE artifacts (
	attempt_id INTEGER NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	address    INTEGER NOT NULL,
	data       BLOB NOT NULL,
	sha256     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (attempt_id, name)
);

CREATE TABLE images (
	sha256    TEXT PRIMARY KEY,
	name      TEXT NOT NULL,
	version   TEXT NOT NULL,
	purpose   TEXT NOT NULL CHECK (purpose IN ('factory', 'app', 'recovery')),
	signer    TEXT NOT NULL DEFAULT '',
	size      INTEGER NOT NULL,
	path      TEXT NOT NULL DEFAULT '',
	added_by  TEXT NOT NULL DEFAULT '',
	added_at  INTEGER NOT NULL
);

CREATE TABLE image_targets (
	sha256   TEXT NOT NULL REFERENCES images(sha256) ON DELETE CASCADE,
	revision TEXT NOT NULL,
	PRIMARY KEY (sha256, revision)
);

CREATE TABLE pools (
	name   TEXT PRIMARY KEY,
	format TEXT NOT NULL, -- a fmt verb for the number, e.g. "SN%08d"
	first  INTEGER NOT NULL,
	last   INTEGER NOT NULL,
	next   INTEGER NOT NULL,
	CHECK (first <= last)
);

-- One row per value ever handed out. A value is reserved for an attempt,
-- then committed with its passing outcome or released by a failure; a
-- released value is reused before a new one is taken. The partial unique
-- index makes committing one value twice impossible.
CREATE TABLE allocations (
	id          INTEGER PRIMARY KEY,
	pool        TEXT NOT NULL REFERENCES pools(name),
	number      INTEGER NOT NULL,
	value       TEXT NOT NULL,
	state       TEXT NOT NULL CHECK (state IN ('reserved', 'committed', 'released')),
	attempt_id  INTEGER REFERENCES attempts(id),
	unit_serial TEXT,
	updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX allocations_live ON allocations(pool, number) WHERE state IN ('reserved', 'committed');
CREATE UNIQUE INDEX allocations_committed ON allocations(value) WHERE state = 'committed';
CREATE INDEX allocations_attempt ON allocations(attempt_id);

CREATE TABLE quarantine (
	id          INTEGER PRIMARY KEY,
	slot        INTEGER NOT NULL,
	reason      TEXT NOT NULL,
	since       INTEGER NOT NULL,
	by          TEXT NOT NULL DEFAULT '',
	released_at INTEGER,
	released_by TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX quarantine_open ON quarantine(slot) WHERE released_at IS NULL;
