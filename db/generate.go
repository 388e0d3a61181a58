package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"
)

// GenerateOptions shape the history Generate writes.
type GenerateOptions struct {
	Attempts  int       // attempts to write
	Days      int       // spread over this many days before End
	Units     int       // distinct units; 0 means 3 in 10 attempts
	Slots     int       // 0 means 32
	Revisions int       // hardware revisions, 0 means 7 (at most 26)
	End       time.Time // zero means now, on the hour
	Seed      uint64
	// Copies above 1 generates Attempts/Copies attempts (and Units/Copies
	// units) one by one, then the rest as that many copies of them made by
	// SQLite itself: each copy with its own units (serial number suffixed
	// -k), slots rotated, and starts shifted so the copies interleave.
	// Much faster for tens of millions of attempts; the rates are those
	// of the first copy.
	Copies int
}

// genStep is a step of the generated recipe and its typical duration.
var genSteps = []struct {
	name string
	ms   float64
}{{"identify", 800}, {"erase", 6000}, {"write", 25000}, {"verify", 8000}, {"boot", 3000}}

var genClasses = map[string][]string{
	"unit":        {"verify-mismatch", "verify-mismatch", "no-sync", "erase-timeout", "boot-failed"},
	"station":     {"port-vanished", "line-error"},
	"refused":     {"wrong-revision", "unsigned-image"},
	"interrupted": {"station-stopped"},
}

// Generate fills the empty database at path with plausible history: units
// that come back after passing (RMAs) and retries after a unit's failure,
// two shifts a day (06:00 to 22:00 UTC), several operators, recipes whose
// version rises over the period, one slot with a bad cable. It writes in
// one transaction with journaling off (the file is new: a crash leaves a
// file to delete, not a record to save), builds the indexes and rollups at
// the end, and leaves the database in WAL mode like any other. It returns
// how many attempts it wrote.
func Generate(ctx context.Context, path string, o GenerateOptions) (int, error) {
	if o.Attempts <= 0 || o.Days <= 0 {
		return 0, fmt.Errorf("db: generate: need --attempts and --days above zero (got %d and %d)", o.Attempts, o.Days)
	}
	if o.Units <= 0 {
		o.Units = max(1, o.Attempts*3/10)
	}
	if o.Slots <= 0 {
		o.Slots = 32
	}
	if o.Revisions <= 0 {
		o.Revisions = 7
	}
	if o.Revisions > 26 {
		return 0, fmt.Errorf("db: generate: at most 26 revisions, not %d", o.Revisions)
	}
	if o.End.IsZero() {
		o.End = time.Now().UTC().Truncate(time.Hour)
	}
	s, err := Open(path) // creates and migrates
	if err != nil {
		return 0, err
	}
	var n int
	err = s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM attempts`).Scan(&n)
	s.Close()
	if err != nil {
		return 0, err
	}
	if n > 0 {
		return 0, fmt.Errorf("db: generate: %s already holds %d attempts; generate into a new file", path, n)
	}
	q := url.Values{}
	q.Set("_journal_mode", "OFF")
	q.Set("_synchronous", "OFF")
	q.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite3", dsn(path, q))
	if err != nil {
		return 0, err
	}
	defer w.Close()
	w.SetMaxOpenConns(1)
	for _, p := range []string{`PRAGMA cache_size = -262144`, `PRAGMA temp_store = MEMORY`} {
		if _, err := w.ExecContext(ctx, p); err != nil {
			return 0, err
		}
	}
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	idx, err := generateTx(ctx, tx, o)
	if err != nil {
		return 0, err
	}
	if err := rebuildRollups(tx); err != nil {
		return 0, err
	}
	for _, sq := range idx {
		if _, err := tx.Exec(sq); err != nil {
			return 0, err
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	for _, p := range []string{`PRAGMA journal_mode = WAL`, `ANALYZE`} {
		if _, err := w.ExecContext(ctx, p); err != nil {
			return 0, err
		}
	}
	return o.Attempts / max(1, o.Copies) * max(1, o.Copies), nil
}

// generateTx writes the history without the indexes of attempts and
// visits, and returns the statements that create them: they are built
// once at the end, faster than kept while millions of rows arrive in
// another order than theirs.
func generateTx(ctx context.Context, tx *sql.Tx, o GenerateOptions) ([]string, error) {
	var idx []string
	rows, err := tx.QueryContext(ctx, `SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('attempts', 'visits') AND sql IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	var names []string
	for rows.Next() {
		var name, sq string
		if err := rows.Scan(&name, &sq); err != nil {
			rows.Close()
			return nil, err
		}
		names, idx = append(names, name), append(idx, sq)
	}
	rows.Close()
	for _, n := range names {
		if _, err := tx.Exec(`DROP INDEX ` + n); err != nil {
			return nil, err
		}
	}
	insA, err := tx.Prepare(`INSERT INTO attempts (id, unit_serial, slot, slot_name, recipe, recipe_version, recipe_sha256, revision,
		image_sha256, image_version, strategy, outcome, class, fault, reason, hint, last_step, bytes_written, operator, started_at, finished_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return nil, err
	}
	defer insA.Close()
	insS, err := tx.Prepare(`INSERT INTO steps (attempt_id, seq, name, strategy, started_at, finished_at, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return nil, err
	}
	defer insS.Close()
	insC, err := tx.Prepare(`INSERT INTO console_z (attempt_id, size, data) VALUES (?, ?, ?)`)
	if err != nil {
		return nil, err
	}
	defer insC.Close()

	copies := max(1, o.Copies)
	total := o.Attempts
	o.Attempts /= copies
	o.Units = max(1, o.Units/copies)
	rng := rand.New(rand.NewPCG(o.Seed, 0x756e627269636b))
	type unit struct {
		serial      string
		rev         int
		first, last int64
	}
	units := make([]unit, 0, o.Units)
	var retry []int // units whose last attempt failed through their fault
	families := []string{"stm32-app", "esp32-app", "uboot-ab"}
	operators := [2][]string{{"ana", "ben", "chen"}, {"dara", "eli", "fay"}}
	sums := map[string]string{}
	sum := func(s string) string {
		if v, ok := sums[s]; ok {
			return v
		}
		h := sha256.Sum256([]byte(s))
		sums[s] = hex.EncodeToString(h[:])
		return sums[s]
	}
	// Day 0 starts at midnight UTC, so the working day is 06:00 to 22:00
	// UTC whatever the end.
	start := o.End.Add(-time.Duration(o.Days) * 24 * time.Hour).Truncate(24 * time.Hour)
	active := float64(o.Days) * 16 * 3600e3 // ms of working time: 06:00 to 22:00
	perSlot := active * float64(o.Slots) / float64(o.Attempts)
	scale := min(1, perSlot/60e3) // attempts get quicker when the bench is busier
	for i := 0; i < o.Attempts; i++ {
		if i%100000 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// Working time to wall time: day d, minute m of the 16 working hours.
		off := (float64(i) + rng.Float64()) * active / float64(o.Attempts)
		day := int(off / (16 * 3600e3))
		inDay := math.Mod(off, 16*3600e3)
		t0 := start.Add(time.Duration(day)*24*time.Hour + 6*time.Hour + time.Duration(inDay)*time.Millisecond)
		shift := 0
		if inDay >= 8*3600e3 {
			shift = 1
		}
		var u int
		switch {
		case len(retry) > 0 && rng.Float64() < 0.9:
			j := rng.IntN(len(retry))
			u, retry[j] = retry[j], retry[len(retry)-1]
			retry = retry[:len(retry)-1]
		case len(units) < o.Units && (len(units) == 0 || rng.Float64() < float64(o.Units-len(units))/float64(o.Attempts-i)*1.05):
			u = len(units)
			units = append(units, unit{serial: fmt.Sprintf("SN%08d", u+1), rev: rng.IntN(o.Revisions), first: ms(t0)})
		default:
			u = rng.IntN(len(units))
		}
		un := &units[u]
		un.last = ms(t0)
		rev := "rev-" + string(rune('A'+un.rev))
		fam := families[un.rev*len(families)/o.Revisions]
		ver := 1 + day*3/o.Days
		image := fmt.Sprintf("%s-%d.%d.0", fam, ver, un.rev)
		slot := 1 + rng.IntN(o.Slots)
		op := operators[shift][rng.IntN(3)]
		outcome, fault, class := "passed", "", ""
		stationRate := 0.02
		if slot == 13 {
			stationRate = 0.12
		}
		switch x := rng.Float64(); {
		case x < 0.065:
			outcome, fault = "failed", "unit"
		case x < 0.065+stationRate:
			outcome, fault = "failed", "station"
		case x < 0.075+stationRate:
			outcome, fault = "refused", "refused"
		case x < 0.08+stationRate:
			outcome, fault = "interrupted", "station"
		}
		if outcome != "passed" {
			key := fault
			if outcome == "interrupted" {
				key = "interrupted"
			}
			cs := genClasses[key]
			class = cs[rng.IntN(len(cs))]
		}
		if fault == "unit" && rng.Float64() < 0.85 {
			retry = append(retry, u)
		}
		// Steps: all of them on a pass; up to the failing one otherwise.
		nsteps := len(genSteps)
		switch outcome {
		case "refused":
			nsteps = 0
		case "failed", "interrupted":
			nsteps = 1 + rng.IntN(len(genSteps))
		}
		id := int64(i + 1)
		t := ms(t0)
		last := ""
		for k := 0; k < nsteps; k++ {
			d := int64(genSteps[k].ms * scale * math.Exp(rng.NormFloat64()*0.25))
			so := "ok"
			if k == nsteps-1 && outcome != "passed" {
				so = "failed"
			}
			if _, err := insS.Exec(id, k+1, genSteps[k].name, "flash", t, t+d, so, ""); err != nil {
				return nil, err
			}
			t += d
			last = genSteps[k].name
		}
		t += 200
		var bytes int64
		if outcome == "passed" {
			bytes = 256 << 10
		}
		reason, hint := "", ""
		if outcome != "passed" {
			reason = class + " during " + last
			hint = "see the console log"
		}
		imgSHA, imgVer := sum(image), image
		if outcome == "refused" && class == "unsigned-image" {
			imgSHA, imgVer = "", ""
		}
		if _, err := insA.Exec(id, un.serial, slot, fmt.Sprintf("slot-%02d", slot), fam, ver, sum(fam+strings.Repeat("v", ver)), rev,
			imgSHA, imgVer, "flash", outcome, class, fault, reason, hint, last, bytes, op, ms(t0), t); err != nil {
			return nil, err
		}
		if fault == "unit" {
			log := fmt.Sprintf("boot: %s %s\r\nflash: %s at step %s\r\n", rev, un.serial, class, last)
			z, err := deflate([]byte(log))
			if err != nil {
				return nil, err
			}
			if _, err := insC.Exec(id, len(log), z); err != nil {
				return nil, err
			}
		}
	}
	insU, err := tx.Prepare(`INSERT INTO units (serial, protocol, chip, revision, model, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return nil, err
	}
	defer insU.Close()
	for _, u := range units {
		if _, err := insU.Exec(u.serial, "", "", "rev-"+string(rune('A'+u.rev)), "", u.first, u.last); err != nil {
			return nil, err
		}
	}
	// The copies, made by SQLite without a round trip per row. Copy k's
	// starts are shifted by k/copies of the gap between two attempts of
	// the first copy, so the copies interleave.
	base := int64(o.Attempts)
	for k := 1; k < copies; k++ {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		shift := int64(active / float64(total) * float64(k))
		suffix := fmt.Sprintf("-%d", k)
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO units (serial, protocol, chip, revision, model, first_seen, last_seen)
				SELECT serial || ?, protocol, chip, revision, model, first_seen + ?, last_seen + ? FROM units WHERE serial NOT LIKE '%-%'`,
				[]any{suffix, shift, shift}},
			{`INSERT INTO attempts (id, unit_serial, slot, slot_name, recipe, recipe_version, recipe_sha256, revision,
				image_sha256, image_version, strategy, outcome, class, fault, reason, hint, last_step, bytes_written, operator, started_at, finished_at)
				SELECT id + ?, unit_serial || ?, (slot - 1 + ?) % ? + 1, printf('slot-%02d', (slot - 1 + ?) % ? + 1), recipe, recipe_version,
					recipe_sha256, revision, image_sha256, image_version, strategy, outcome, class, fault, reason, hint, last_step,
					bytes_written, operator, started_at + ?, finished_at + ?
				FROM attempts WHERE id <= ?`,
				[]any{int64(k) * base, suffix, 7 * k, o.Slots, 7 * k, o.Slots, shift, shift, base}},
			{`INSERT INTO steps (attempt_id, seq, name, strategy, started_at, finished_at, outcome, detail)
				SELECT attempt_id + ?, seq, name, strategy, started_at + ?, finished_at + ?, outcome, detail FROM steps WHERE attempt_id <= ?`,
				[]any{int64(k) * base, shift, shift, base}},
			{`INSERT INTO console_z (attempt_id, size, data) SELECT attempt_id + ?, size, data FROM console_z WHERE attempt_id <= ?`,
				[]any{int64(k) * base, base}},
		} {
			if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
				return nil, fmt.Errorf("copy %d: %w", k, err)
			}
		}
	}
	return idx, nil
}
