-- 0003: dashboard rollups kept with each attempt's end, unit visits,
-- compressed console logs. The rollups are filled from the attempts already
-- recorded by the Go step that follows this migration (see postMigrate).

-- A visit is one stay of a unit at the station: it opens with the unit's
-- first judged attempt (a pass, or a failure through the unit's fault)
-- after its previous visit passed, and closes with its first pass. A unit
-- back for its third RMA has three visits.
CREATE TABLE visits (
	serial         TEXT NOT NULL,
	n              INTEGER NOT NULL, -- 1 for the unit's first visit
	first_attempt  INTEGER NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,
	passed_attempt INTEGER,          -- NULL while the unit has not passed
	PRIMARY KEY (serial, n)
);
CREATE UNIQUE INDEX visits_first ON visits(first_attempt);

-- Totals of finished attempts, by the hour (grain 1) or the UTC day (grain
-- 24) they started in, grouped by gdim ('', revision, recipe, image, slot,
-- operator, class) and kept once per dashboard filter fdim ('' for none,
-- revision, slot; by the day also 'revslot', revision and slot at once,
-- fkey revision, char 31, slot). A visit counts in the bucket and groups of the attempt
-- that opened it.
CREATE TABLE roll (
	grain          INTEGER NOT NULL,
	fdim           TEXT NOT NULL,
	fkey           TEXT NOT NULL,
	gdim           TEXT NOT NULL,
	bucket         INTEGER NOT NULL, -- started_at / (grain * 3600000)
	gkey           TEXT NOT NULL,
	attempts       INTEGER NOT NULL DEFAULT 0,
	passed         INTEGER NOT NULL DEFAULT 0,
	unit_faults    INTEGER NOT NULL DEFAULT 0,
	station_faults INTEGER NOT NULL DEFAULT 0,
	refused        INTEGER NOT NULL DEFAULT 0,
	interrupted    INTEGER NOT NULL DEFAULT 0,
	visits         INTEGER NOT NULL DEFAULT 0,
	first_pass     INTEGER NOT NULL DEFAULT 0,
	final_pass     INTEGER NOT NULL DEFAULT 0,
	returns        INTEGER NOT NULL DEFAULT 0, -- visits that were their unit's second: its first return
	bytes          INTEGER NOT NULL DEFAULT 0,
	busy_ms        INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (grain, fdim, fkey, gdim, bucket, gkey)
) WITHOUT ROWID;

-- How long the steps that succeeded took, as a histogram per UTC day
-- (grain 24) and per week (grain 168) of their attempt's start, once per
-- filter; per hour (grain 1) unfiltered; and per week under revision and
-- slot at once (fdim 'revslot', fkey revision, char 31, slot). Bin b holds durations d (ms) with
-- floor(log(d+1)/log(1.1)) = b.
CREATE TABLE roll_steps (
	grain  INTEGER NOT NULL,
	fdim   TEXT NOT NULL,
	fkey   TEXT NOT NULL,
	bucket INTEGER NOT NULL, -- started_at / (grain * 3600000)
	name   TEXT NOT NULL,
	bin    INTEGER NOT NULL,
	n      INTEGER NOT NULL,
	PRIMARY KEY (grain, fdim, fkey, bucket, name, bin)
) WITHOUT ROWID;

-- An attempt's console log once it ended: its chunks joined and DEFLATE
-- compressed (RFC 1951). Retention deletes these rows, never the attempt.
CREATE TABLE console_z (
	attempt_id INTEGER PRIMARY KEY REFERENCES attempts(id) ON DELETE CASCADE,
	size       INTEGER NOT NULL, -- bytes before compression
	data       BLOB NOT NULL
);

ALTER TABLE attempts ADD COLUMN console_pruned INTEGER NOT NULL DEFAULT 0;
-- The visit an attempt opened (its number, 0 for none) and whether that
-- visit passed by now: the visits table's facts on the attempt's row, so
-- counts read from the attempts need no join.
ALTER TABLE attempts ADD COLUMN visit INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN visit_passed INTEGER NOT NULL DEFAULT 0;

-- Both dashboard filters at once are answered from the attempts, through
-- this index, which covers the series and the operator grouping.
CREATE INDEX attempts_slot_rev ON attempts(slot, revision, started_at, outcome, fault, finished_at, bytes_written, operator, visit, visit_passed);
CREATE INDEX attempts_finished ON attempts(finished_at);
