package db

import (
	"bytes"
	"compress/flate"
	"database/sql"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// The dashboard reads rollups, not attempts. Each attempt's end adds its
// counts, in the same transaction, to:
//
//   - roll, grain 1: per hour of its start, no grouping, once unfiltered,
//     once under its revision and once under its slot (the time series:
//     days, shifts, units per hour);
//   - roll, grain 24: per UTC day of its start, grouped by revision,
//     recipe version, image, slot, operator and failure class, again once
//     per filter and once under revision and slot at once (the groupings
//     and the Pareto);
//   - roll_steps: a histogram of how long each of its steps took, per day
//     and filter, and per week under revision and slot at once.
//
// A year is at most 8,760 hours and 365 days whatever the number of
// attempts, so a query over a year reads a few thousand rows where the
// attempts would be a million or ten. Partial days (weeks) at the ends of
// a time range, and the hourly series filtered on revision and slot at
// once, read the attempts through an index (attempts_started, and
// attempts_slot_rev, which covers them); those slices are small. RebuildRollups recomputes every rollup from the
// attempts (after an import, or when this schema arrives on an old
// database) with the same rules as the live path.

// Grouping dimensions (gdim) and filter dimensions (fdim) of the rollups.
var (
	gdims = []string{"", "revision", "recipe", "image", "slot", "operator", "class"}
	fdims = []string{"", "revision", "slot"}
	// rollFdims are the filters of roll: by the day, also revision and
	// slot at once.
	rollFdims = []string{"", "revision", "slot", "revslot"}
)

const hourMS = int64(time.Hour / time.Millisecond)

// postMigrate runs Go steps after a migration, in its transaction.
var postMigrate = map[int]func(*sql.Tx) error{
	3: func(tx *sql.Tx) error { return rebuildRollups(tx) },
}

// rollAttempt is what the rollups need of a finished attempt.
type rollAttempt struct {
	id, started, finished, bytes       int64
	serial, revision, recipe, operator string
	imageSHA, imageVersion             string
	outcome, class, fault              string
	recipeVersion, slot                int
}

const rollAttemptCols = `id, started_at, COALESCE(finished_at, started_at), bytes_written, COALESCE(unit_serial, ''),
	revision, recipe, operator, image_sha256, image_version, outcome, class, fault, recipe_version, slot`

func scanRollAttempt(sc interface{ Scan(...any) error }, a *rollAttempt) error {
	return sc.Scan(&a.id, &a.started, &a.finished, &a.bytes, &a.serial, &a.revision, &a.recipe, &a.operator,
		&a.imageSHA, &a.imageVersion, &a.outcome, &a.class, &a.fault, &a.recipeVersion, &a.slot)
}

// judged says whether the attempt judged its unit: a pass, or a failure
// through the unit's fault. Only judged attempts open and close visits.
func (a *rollAttempt) judged() bool {
	return a.serial != "" && (a.outcome == string(Passed) || (a.outcome == string(Failed) && a.fault == "unit"))
}

// gkey is the attempt's key in grouping gdim; ok is false when the attempt
// is not counted there (a pass has no failure class). gkeySQL must give the
// same keys.
func (a *rollAttempt) gkey(gdim string) (string, bool) {
	switch gdim {
	case "":
		return "", true
	case "revision":
		return a.revision, true
	case "recipe":
		return a.recipe + " v" + strconv.Itoa(a.recipeVersion), true
	case "image":
		if a.imageSHA == "" {
			return "", true
		}
		return a.imageVersion + " " + a.imageSHA[:min(12, len(a.imageSHA))], true
	case "slot":
		return strconv.Itoa(a.slot), true
	case "operator":
		return a.operator, true
	case "class":
		if a.outcome == string(Passed) {
			return "", false
		}
		return a.outcome + "\x1f" + a.fault + "\x1f" + a.class, true
	}
	panic("db: unknown grouping " + gdim)
}

// gkeySQL is gkey as an SQL expression over attempts a, and the condition
// an attempt must meet to count in the grouping.
func gkeySQL(gdim string) (expr, cond string) {
	switch gdim {
	case "":
		return "''", ""
	case "revision":
		return "a.revision", ""
	case "recipe":
		return "a.recipe || ' v' || a.recipe_version", ""
	case "image":
		return "CASE WHEN a.image_sha256 = '' THEN '' ELSE a.image_version || ' ' || substr(a.image_sha256, 1, 12) END", ""
	case "slot":
		return "CAST(a.slot AS TEXT)", ""
	case "operator":
		return "a.operator", ""
	case "class":
		return "a.outcome || char(31) || a.fault || char(31) || a.class", " AND a.outcome != 'passed'"
	}
	panic("db: unknown grouping " + gdim)
}

func (a *rollAttempt) fkey(fdim string) string {
	switch fdim {
	case "revision":
		return a.revision
	case "slot":
		return strconv.Itoa(a.slot)
	case "revslot":
		return revSlot(a.revision, a.slot)
	}
	return ""
}

// Counts are the totals of a set of finished attempts.
type Counts struct {
	Attempts      int64 `json:"attempts"`
	Passed        int64 `json:"passed"`
	UnitFaults    int64 `json:"unit_faults"`    // failed through the unit's fault
	StationFaults int64 `json:"station_faults"` // failed through the station's fault
	Refused       int64 `json:"refused"`
	Interrupted   int64 `json:"interrupted"`
	// Visits opened by these attempts; FirstPass of them passed at that
	// first judged attempt, FinalPass passed by now.
	Visits    int64 `json:"visits"`
	FirstPass int64 `json:"first_pass"`
	FinalPass int64 `json:"final_pass"`
	// Returns of these visits were their unit's second: the unit's first
	// return (an RMA). Summed over all time, the repeat visitors.
	Returns int64 `json:"returns"`
	Bytes   int64 `json:"bytes_written"`
	BusyMS  int64 `json:"busy_ms"` // the attempts' durations, summed
}

// FirstPassYield is FirstPass / Visits (0 without visits).
func (c Counts) FirstPassYield() float64 { return ratio(c.FirstPass, c.Visits) }

// FinalYield is FinalPass / Visits.
func (c Counts) FinalYield() float64 { return ratio(c.FinalPass, c.Visits) }

// AttemptYield is Passed / (Passed + UnitFaults): station faults, refusals
// and interruptions never count against units.
func (c Counts) AttemptYield() float64 { return ratio(c.Passed, c.Passed+c.UnitFaults) }

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func (c *Counts) addCounts(o Counts) {
	c.Attempts += o.Attempts
	c.Passed += o.Passed
	c.UnitFaults += o.UnitFaults
	c.StationFaults += o.StationFaults
	c.Refused += o.Refused
	c.Interrupted += o.Interrupted
	c.Visits += o.Visits
	c.FirstPass += o.FirstPass
	c.FinalPass += o.FinalPass
	c.Returns += o.Returns
	c.Bytes += o.Bytes
	c.BusyMS += o.BusyMS
}

// countsOf is what one attempt adds; visit is the number of the visit it
// opened, 0 for none.
func countsOf(a *rollAttempt, visit int) Counts {
	opened := visit > 0
	c := Counts{Attempts: 1, Bytes: a.bytes, BusyMS: max(0, a.finished-a.started)}
	switch {
	case a.outcome == string(Passed):
		c.Passed = 1
	case a.outcome == string(Failed) && a.fault == "unit":
		c.UnitFaults = 1
	case a.outcome == string(Failed):
		c.StationFaults = 1
	case a.outcome == string(Refused):
		c.Refused = 1
	case a.outcome == string(Interrupted):
		c.Interrupted = 1
	}
	if opened {
		c.Visits = 1
		if a.outcome == string(Passed) {
			c.FirstPass = 1
		}
		if visit == 2 {
			c.Returns = 1
		}
	}
	return c
}

type rollKey struct {
	grain      int
	fdim, fkey string
	gdim       string
	bucket     int64
	gkey       string
}

// keys calls fn with every rollup row the attempt counts in.
func (a *rollAttempt) keys(fn func(rollKey)) {
	for _, fd := range rollFdims {
		fk := a.fkey(fd)
		if fd != "revslot" { // revision and slot at once: hours come from the attempts
			fn(rollKey{grain: 1, fdim: fd, fkey: fk, bucket: a.started / hourMS})
		}
		for _, gd := range gdims {
			if gk, ok := a.gkey(gd); ok {
				fn(rollKey{grain: 24, fdim: fd, fkey: fk, gdim: gd, bucket: a.started / (24 * hourMS), gkey: gk})
			}
		}
	}
}

const rollUpsert = `INSERT INTO roll (grain, fdim, fkey, gdim, bucket, gkey, attempts, passed, unit_faults, station_faults,
		refused, interrupted, visits, first_pass, final_pass, returns, bytes, busy_ms)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT DO UPDATE SET attempts = attempts + excluded.attempts, passed = passed + excluded.passed,
		unit_faults = unit_faults + excluded.unit_faults, station_faults = station_faults + excluded.station_faults,
		refused = refused + excluded.refused, interrupted = interrupted + excluded.interrupted,
		visits = visits + excluded.visits, first_pass = first_pass + excluded.first_pass,
		final_pass = final_pass + excluded.final_pass, returns = returns + excluded.returns,
		bytes = bytes + excluded.bytes, busy_ms = busy_ms + excluded.busy_ms`

func rollArgs(k rollKey, c Counts) []any {
	return []any{k.grain, k.fdim, k.fkey, k.gdim, k.bucket, k.gkey, c.Attempts, c.Passed, c.UnitFaults, c.StationFaults,
		c.Refused, c.Interrupted, c.Visits, c.FirstPass, c.FinalPass, c.Returns, c.Bytes, c.BusyMS}
}

const stepUpsert = `INSERT INTO roll_steps (grain, fdim, fkey, bucket, name, bin, n) VALUES (?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT DO UPDATE SET n = n + excluded.n`

// stepKey is a row of roll_steps.
type stepKey struct {
	grain      int
	fdim, fkey string
	bucket     int64
	name       string
	bin        int
}

// stepKeys calls fn with every roll_steps row a step of a counts in: per
// day and per week once per filter, per hour unfiltered (the partial days
// at the ends of a range hold the most steps there), per week under
// revision and slot at once.
func (a *rollAttempt) stepKeys(name string, ms int64, fn func(stepKey)) {
	b := stepBin(ms)
	fn(stepKey{1, "", "", a.started / hourMS, name, b})
	for _, fd := range fdims {
		fn(stepKey{24, fd, a.fkey(fd), a.started / (24 * hourMS), name, b})
		fn(stepKey{168, fd, a.fkey(fd), a.started / (168 * hourMS), name, b})
	}
	fn(stepKey{168, "revslot", revSlot(a.revision, a.slot), a.started / (168 * hourMS), name, b})
}

func revSlot(rev string, slot int) string { return rev + "\x1f" + strconv.Itoa(slot) }

// stepBin is the histogram bin of a step duration in milliseconds: bins
// grow by 10 %, so a median or p90 read from them is within 5 % of the
// true value.
func stepBin(ms int64) int {
	return int(math.Floor(math.Log(float64(max(ms, 0)+1)) / math.Log(1.1)))
}

// binMid is the duration a bin stands for: the geometric middle of its
// bounds.
func binMid(b int) time.Duration {
	lo, hi := math.Pow(1.1, float64(b))-1, math.Pow(1.1, float64(b+1))-1
	return time.Duration(math.Sqrt(max(lo, 0.5)*hi) * float64(time.Millisecond))
}

// rollFinished adds attempt id, just finished, to the visits and the
// rollups. It runs in finishTx's transaction.
func rollFinished(tx *sql.Tx, id int64) error {
	var a rollAttempt
	if err := scanRollAttempt(tx.QueryRow(`SELECT `+rollAttemptCols+` FROM attempts WHERE id = ?`, id), &a); err != nil {
		return err
	}
	opened, closer := 0, (*rollAttempt)(nil)
	if a.judged() {
		var n int
		var first int64
		var passed sql.NullInt64
		err := tx.QueryRow(`SELECT n, first_attempt, passed_attempt FROM visits WHERE serial = ? ORDER BY n DESC LIMIT 1`, a.serial).
			Scan(&n, &first, &passed)
		switch {
		case err == sql.ErrNoRows || (err == nil && passed.Valid):
			opened = n + 1
			var pa any
			if a.outcome == string(Passed) {
				pa, closer = a.id, &a
			}
			if _, err := tx.Exec(`INSERT INTO visits (serial, n, first_attempt, passed_attempt) VALUES (?, ?, ?, ?)`, a.serial, n+1, a.id, pa); err != nil {
				return err
			}
			if _, err := tx.Exec(`UPDATE attempts SET visit = ?, visit_passed = ? WHERE id = ?`, n+1, pa != nil, a.id); err != nil {
				return err
			}
		case err != nil:
			return err
		case a.outcome == string(Passed):
			if _, err := tx.Exec(`UPDATE visits SET passed_attempt = ? WHERE serial = ? AND n = ?`, a.id, a.serial, n); err != nil {
				return err
			}
			if _, err := tx.Exec(`UPDATE attempts SET visit_passed = 1 WHERE id = ?`, first); err != nil {
				return err
			}
			closer = new(rollAttempt)
			if err := scanRollAttempt(tx.QueryRow(`SELECT `+rollAttemptCols+` FROM attempts WHERE id = ?`, first), closer); err != nil {
				return err
			}
		}
	}
	up, err := tx.Prepare(rollUpsert)
	if err != nil {
		return err
	}
	defer up.Close()
	c := countsOf(&a, opened)
	a.keys(func(k rollKey) {
		if err == nil {
			_, err = up.Exec(rollArgs(k, c)...)
		}
	})
	if closer != nil {
		closer.keys(func(k rollKey) {
			if err == nil {
				_, err = up.Exec(rollArgs(k, Counts{FinalPass: 1})...)
			}
		})
	}
	if err != nil {
		return err
	}
	rows, err := tx.Query(`SELECT name, finished_at - started_at FROM steps WHERE attempt_id = ? AND outcome = 'ok' AND finished_at IS NOT NULL`, id)
	if err != nil {
		return err
	}
	type sd struct {
		name string
		ms   int64
	}
	var steps []sd
	for rows.Next() {
		var s sd
		if err := rows.Scan(&s.name, &s.ms); err != nil {
			rows.Close()
			return err
		}
		steps = append(steps, s)
	}
	rows.Close()
	for _, s := range steps {
		a.stepKeys(s.name, s.ms, func(k stepKey) {
			if err == nil {
				_, err = tx.Exec(stepUpsert, k.grain, k.fdim, k.fkey, k.bucket, k.name, k.bin, 1)
			}
		})
		if err != nil {
			return err
		}
	}
	return compressConsole(tx, id)
}

// compressConsole joins an attempt's console chunks into one compressed
// row.
func compressConsole(tx *sql.Tx, id int64) error {
	rows, err := tx.Query(`SELECT data FROM console WHERE attempt_id = ? ORDER BY seq`, id)
	if err != nil {
		return err
	}
	var raw bytes.Buffer
	for rows.Next() {
		var d []byte
		if err := rows.Scan(&d); err != nil {
			rows.Close()
			return err
		}
		raw.Write(d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if raw.Len() == 0 {
		return nil
	}
	z, err := deflate(raw.Bytes())
	if err != nil {
		return err
	}
	if _, err := tx.Exec(`INSERT INTO console_z (attempt_id, size, data) VALUES (?, ?, ?)
		ON CONFLICT(attempt_id) DO UPDATE SET size = excluded.size, data = excluded.data`, id, raw.Len(), z); err != nil {
		return err
	}
	_, err = tx.Exec(`DELETE FROM console WHERE attempt_id = ?`, id)
	return err
}

func deflate(b []byte) ([]byte, error) {
	var z bytes.Buffer
	w, _ := flate.NewWriter(&z, flate.BestCompression)
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return z.Bytes(), nil
}

func inflate(z []byte) ([]byte, error) {
	b, err := io.ReadAll(flate.NewReader(bytes.NewReader(z)))
	if err != nil {
		return nil, fmt.Errorf("db: a compressed console log is damaged: %w", err)
	}
	return b, nil
}

// rebuildRollups recomputes the visits and every rollup from the finished
// attempts and their steps, with the rules of rollFinished, in memory
// (bounded by the rollup rows and the units with an open visit, not by the
// attempts).
func rebuildRollups(tx *sql.Tx) error {
	for _, q := range []string{`DELETE FROM roll`, `DELETE FROM roll_steps`, `DELETE FROM visits`,
		`UPDATE attempts SET visit = 0, visit_passed = 0 WHERE visit != 0 OR visit_passed != 0`} {
		if _, err := tx.Exec(q); err != nil {
			return err
		}
	}
	type unitState struct {
		n      int
		opener *rollAttempt // the open visit's first attempt; nil when none is open
	}
	units := map[string]*unitState{}
	roll := map[rollKey]*Counts{}
	add := func(k rollKey, c Counts) {
		p := roll[k]
		if p == nil {
			p = new(Counts)
			roll[k] = p
		}
		p.addCounts(c)
	}
	intern := map[string]string{}
	in := func(s string) string {
		if v, ok := intern[s]; ok {
			return v
		}
		if len(intern) < 1<<16 {
			intern[s] = s
		}
		return s
	}
	visit, err := tx.Prepare(`INSERT INTO visits (serial, n, first_attempt, passed_attempt) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer visit.Close()
	mark, err := tx.Prepare(`UPDATE attempts SET visit = ?, visit_passed = ? WHERE id = ?`)
	if err != nil {
		return err
	}
	defer mark.Close()
	rows, err := tx.Query(`SELECT ` + rollAttemptCols + ` FROM attempts WHERE outcome != 'running' ORDER BY id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		a := new(rollAttempt)
		if err := scanRollAttempt(rows, a); err != nil {
			rows.Close()
			return err
		}
		a.revision, a.recipe, a.operator, a.imageVersion, a.imageSHA = in(a.revision), in(a.recipe), in(a.operator), in(a.imageVersion), in(a.imageSHA)
		a.outcome, a.class, a.fault = in(a.outcome), in(a.class), in(a.fault)
		opened := 0
		if a.judged() {
			u := units[a.serial]
			if u == nil {
				u = &unitState{}
				units[a.serial] = u
			}
			if u.opener == nil {
				u.n++
				opened = u.n
				u.opener = a
			}
			if a.outcome == string(Passed) {
				if _, err := visit.Exec(a.serial, u.n, u.opener.id, a.id); err != nil {
					rows.Close()
					return err
				}
				if _, err := mark.Exec(u.n, true, u.opener.id); err != nil {
					rows.Close()
					return err
				}
				op := u.opener
				op.keys(func(k rollKey) { add(k, Counts{FinalPass: 1}) })
				u.opener = nil
			}
		}
		c := countsOf(a, opened)
		a.keys(func(k rollKey) { add(k, c) })
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for serial, u := range units {
		if u.opener != nil {
			if _, err := visit.Exec(serial, u.n, u.opener.id, nil); err != nil {
				return err
			}
			if _, err := mark.Exec(u.n, false, u.opener.id); err != nil {
				return err
			}
		}
	}
	up, err := tx.Prepare(rollUpsert)
	if err != nil {
		return err
	}
	defer up.Close()
	for k, c := range roll {
		if _, err := up.Exec(rollArgs(k, *c)...); err != nil {
			return err
		}
	}
	roll = nil
	hist := map[stepKey]int64{}
	srows, err := tx.Query(`SELECT a.started_at, a.revision, a.slot, s.name, s.finished_at - s.started_at
		FROM steps s JOIN attempts a ON a.id = s.attempt_id
		WHERE a.outcome != 'running' AND s.outcome = 'ok' AND s.finished_at IS NOT NULL`)
	if err != nil {
		return err
	}
	for srows.Next() {
		var a rollAttempt
		var name string
		var d int64
		if err := srows.Scan(&a.started, &a.revision, &a.slot, &name, &d); err != nil {
			srows.Close()
			return err
		}
		a.stepKeys(in(name), d, func(k stepKey) {
			k.fkey = in(k.fkey)
			hist[k]++
		})
	}
	srows.Close()
	if err := srows.Err(); err != nil {
		return err
	}
	sup, err := tx.Prepare(stepUpsert)
	if err != nil {
		return err
	}
	defer sup.Close()
	for k, n := range hist {
		if _, err := sup.Exec(k.grain, k.fdim, k.fkey, k.bucket, k.name, k.bin, n); err != nil {
			return err
		}
	}
	return nil
}
