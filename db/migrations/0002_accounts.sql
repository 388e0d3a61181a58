-- 0002: named accounts with password hashes, and the audit log of who did what.

CREATE TABLE users (
	name       TEXT PRIMARY KEY,
	role       TEXT NOT NULL CHECK (role IN ('operator', 'supervisor', 'engineer')),
	hash       TEXT NOT NULL, -- bcrypt
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);

CREATE TABLE audit (
	id     INTEGER PRIMARY KEY,
	at     INTEGER NOT NULL, -- unix milliseconds
	who    TEXT NOT NULL,
	role   TEXT NOT NULL DEFAULT '',
	action TEXT NOT NULL,
	slot   INTEGER NOT NULL DEFAULT 0,
	detail TEXT NOT NULL DEFAULT '',
	remote TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit(at);
