package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Outcome is how an attempt ended.
type Outcome string

// Outcomes.
const (
	Running     Outcome = "running"
	Passed      Outcome = "passed"
	Failed      Outcome = "failed"
	Interrupted Outcome = "interrupted"
	Refused     Outcome = "refused"
)

// Unit is one device the station has seen, keyed by its serial number.
type Unit struct {
	Serial    string    `json:"serial"`
	Protocol  string    `json:"protocol"`
	Chip      string    `json:"chip"`
	Revision  string    `json:"revision"`
	Model     string    `json:"model"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// UpsertUnit records that u was seen now, creating it or updating what is
// known of it (empty fields keep their stored value).
func (s *Store) UpsertUnit(ctx context.Context, u Unit) error {
	if u.Serial == "" {
		return errors.New("db: a unit needs a serial number")
	}
	now := ms(time.Now())
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO units (serial, protocol, chip, revision, model, first_seen, last_seen)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT(serial) DO UPDATE SET
				protocol = CASE WHEN excluded.protocol != '' THEN excluded.protocol ELSE protocol END,
				chip     = CASE WHEN excluded.chip     != '' THEN excluded.chip     ELSE chip END,
				revision = CASE WHEN excluded.revision != '' THEN excluded.revision ELSE revision END,
				model    = CASE WHEN excluded.model    != '' THEN excluded.model    ELSE model END,
				last_seen = excluded.last_seen`,
			u.Serial, u.Protocol, u.Chip, u.Revision, u.Model, now, now)
		return err
	})
}

// AttemptStart is what is known when an attempt begins.
type AttemptStart struct {
	Serial        string // may be empty until the unit is identified
	Slot          int
	SlotName      string
	Recipe        string
	RecipeVersion int
	RecipeSHA256  string
	Revision      string
	ImageSHA256   string
	ImageVersion  string
	Operator      string
	Started       time.Time // zero means now
}

// StartAttempt records a new running attempt and returns its id. A serial
// number given here must belong to a unit already upserted.
func (s *Store) StartAttempt(ctx context.Context, a AttemptStart) (int64, error) {
	if a.Started.IsZero() {
		a.Started = time.Now()
	}
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`INSERT INTO attempts (unit_serial, slot, slot_name, recipe, recipe_version, recipe_sha256,
				revision, image_sha256, image_version, operator, started_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			nullStr(a.Serial), a.Slot, a.SlotName, a.Recipe, a.RecipeVersion, a.RecipeSHA256,
			a.Revision, a.ImageSHA256, a.ImageVersion, a.Operator, ms(a.Started))
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("db: start attempt in slot %d: %w", a.Slot, err)
	}
	return id, nil
}

// SetAttemptUnit ties an attempt to the unit identified during it. The unit
// must have been upserted.
func (s *Store) SetAttemptUnit(ctx context.Context, id int64, serial string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE attempts SET unit_serial = ? WHERE id = ?`, serial, id)
		return err
	})
}

// Step is one step of an attempt.
type Step struct {
	Seq      int       `json:"seq"`
	Name     string    `json:"name"`
	Strategy string    `json:"strategy,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	Outcome  string    `json:"outcome"` // "", "ok", "failed", "skipped"
	Detail   string    `json:"detail,omitempty"`
}

// StartStep records that a step began. It is batched: it returns before the
// write lands, which FinishAttempt and Flush wait for.
func (s *Store) StartStep(ctx context.Context, attempt int64, st Step) error {
	if st.Started.IsZero() {
		st.Started = time.Now()
	}
	return s.writeAsync(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO steps (attempt_id, seq, name, strategy, started_at) VALUES (?, ?, ?, ?, ?)`,
			attempt, st.Seq, st.Name, st.Strategy, ms(st.Started)); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE attempts SET last_step = ? WHERE id = ?`, st.Name, attempt)
		return err
	})
}

// EndStep records how a step ended (batched, like StartStep).
func (s *Store) EndStep(ctx context.Context, attempt int64, seq int, outcome, detail string) error {
	now := ms(time.Now())
	var name string
	var took time.Duration
	return s.enqueue(ctx, op{fn: func(tx *sql.Tx) error {
		var started int64
		err := tx.QueryRow(`SELECT name, started_at FROM steps WHERE attempt_id = ? AND seq = ?`, attempt, seq).Scan(&name, &started)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		took = time.Duration(now-started) * time.Millisecond
		_, err = tx.Exec(`UPDATE steps SET finished_at = ?, outcome = ?, detail = ? WHERE attempt_id = ? AND seq = ?`,
			now, outcome, detail, attempt, seq)
		return err
	}, after: func() {
		if o := s.observer(); o != nil && name != "" {
			o.StepFinished(name, outcome, took)
		}
	}})
}

// AppendConsole appends text the unit printed to the attempt's console log
// (batched).
func (s *Store) AppendConsole(ctx context.Context, attempt int64, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	data = append([]byte(nil), data...)
	return s.writeAsync(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO console (attempt_id, seq, data)
			VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM console WHERE attempt_id = ?), ?)`, attempt, attempt, data)
		return err
	})
}

// Artifact is a region read from a unit during an attempt (a configuration
// backup), kept so it outlives a failed restore.
type Artifact struct {
	Name    string    `json:"name"`
	Address uint32    `json:"address"`
	Data    []byte    `json:"-"`
	SHA256  string    `json:"sha256"`
	Size    int       `json:"size"`
	Created time.Time `json:"created"`
}

// SaveArtifact stores a region read from the unit, durably before it returns.
func (s *Store) SaveArtifact(ctx context.Context, attempt int64, a Artifact) error {
	sum := sha256.Sum256(a.Data)
	data := append([]byte(nil), a.Data...)
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO artifacts (attempt_id, name, address, data, sha256, created_at) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT(attempt_id, name) DO UPDATE SET address = excluded.address, data = excluded.data, sha256 = excluded.sha256`,
			attempt, a.Name, int64(a.Address), data, hex.EncodeToString(sum[:]), ms(time.Now()))
		return err
	})
}

// Artifacts returns the regions saved by an attempt.
func (s *Store) Artifacts(ctx context.Context, attempt int64) ([]Artifact, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, address, data, sha256, created_at FROM artifacts WHERE attempt_id = ? ORDER BY name`, attempt)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Artifact
	for rows.Next() {
		var a Artifact
		var addr int64
		var created sql.NullInt64
		if err := rows.Scan(&a.Name, &addr, &a.Data, &a.SHA256, &created); err != nil {
			return nil, err
		}
		a.Address, a.Size, a.Created = uint32(addr), len(a.Data), fromMS(created)
		out = append(out, a)
	}
	return out, rows.Err()
}

// Finish is how an attempt ended.
type Finish struct {
	Outcome      Outcome
	Class        string // failure class, empty on a pass
	Fault        string // "unit", "station", "refused" or ""
	Reason       string
	Hint         string
	Strategy     string // the strategy that worked (or the last one tried)
	ImageSHA256  string // the image written, if it changed since the start
	ImageVersion string
	// NoImage says the attempt wrote no image after all (a strategy that
	// booted the fallback slot): the image it planned at the start is
	// cleared from the record.
	NoImage  bool
	Bytes    int64
	Finished time.Time // zero means now
}

// ErrFinished is returned when finishing an attempt that is not running.
var ErrFinished = errors.New("db: attempt already finished")

// FinishAttempt records the end of an attempt, after every step and console
// write queued before it. In the same transaction, the pool values reserved
// for the attempt are committed (on a pass, to the attempt's unit) or
// returned to their pools (on anything else). It returns once the
// transaction is durable.
func (s *Store) FinishAttempt(ctx context.Context, id int64, f Finish) error {
	switch f.Outcome {
	case Passed, Failed, Interrupted, Refused:
	default:
		return fmt.Errorf("db: finish attempt %d: outcome %q is not an end", id, f.Outcome)
	}
	if f.Finished.IsZero() {
		f.Finished = time.Now()
	}
	err := s.writeThen(ctx, func(tx *sql.Tx) error {
		return finishTx(tx, id, f)
	}, func() {
		if o := s.observer(); o != nil {
			o.AttemptFinished(string(f.Outcome), f.Class, f.Fault, f.Bytes)
		}
	})
	if err != nil {
		return fmt.Errorf("db: finish attempt %d: %w", id, err)
	}
	return nil
}

func finishTx(tx *sql.Tx, id int64, f Finish) error {
	var serial sql.NullString
	var outcome string
	err := tx.QueryRow(`SELECT unit_serial, outcome FROM attempts WHERE id = ?`, id).Scan(&serial, &outcome)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("no attempt %d", id)
	}
	if err != nil {
		return err
	}
	if outcome != string(Running) {
		return fmt.Errorf("%w (it %s)", ErrFinished, outcome)
	}
	_, err = tx.Exec(`UPDATE attempts SET outcome = ?, class = ?, fault = ?, reason = ?, hint = ?, strategy = ?,
			image_sha256 = CASE WHEN ? THEN '' WHEN ? != '' THEN ? ELSE image_sha256 END,
			image_version = CASE WHEN ? THEN '' WHEN ? != '' THEN ? ELSE image_version END,
			bytes_written = ?, finished_at = ?
		WHERE id = ?`,
		string(f.Outcome), f.Class, f.Fault, f.Reason, f.Hint, f.Strategy,
		f.NoImage, f.ImageSHA256, f.ImageSHA256, f.NoImage, f.ImageVersion, f.ImageVersion, f.Bytes, ms(f.Finished), id)
	if err != nil {
		return err
	}
	if err := rollFinished(tx, id); err != nil {
		return fmt.Errorf("roll up: %w", err)
	}
	now := ms(f.Finished)
	if f.Outcome == Passed {
		if !serial.Valid {
			var n int
			tx.QueryRow(`SELECT COUNT(*) FROM allocations WHERE attempt_id = ? AND state = 'reserved'`, id).Scan(&n)
			if n > 0 {
				return fmt.Errorf("attempt %d passed with %d pool values but no unit serial to commit them to", id, n)
			}
		}
		_, err = tx.Exec(`UPDATE allocations SET state = 'committed', unit_serial = ?, updated_at = ? WHERE attempt_id = ? AND state = 'reserved'`,
			serial, now, id)
		return err
	}
	_, err = tx.Exec(`UPDATE allocations SET state = 'released', updated_at = ? WHERE attempt_id = ? AND state = 'reserved'`, now, id)
	return err
}

// MarkInterrupted ends every attempt still running, as left by a station
// that died, as interrupted, keeping the last step each reached and
// returning their pool reservations. It returns the attempts it marked.
func (s *Store) MarkInterrupted(ctx context.Context) ([]Attempt, error) {
	var ids []int64
	err := s.writeThen(ctx, func(tx *sql.Tx) error {
		rows, err := tx.Query(`SELECT id FROM attempts WHERE outcome = 'running' ORDER BY id`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		for _, id := range ids {
			var last string
			tx.QueryRow(`SELECT last_step FROM attempts WHERE id = ?`, id).Scan(&last)
			reason := "the station stopped while this attempt was running"
			if last != "" {
				reason += ", during step " + last
			}
			err := finishTx(tx, id, Finish{Outcome: Interrupted, Class: "station-stopped", Fault: "station", Reason: reason,
				Hint: "start the unit again: nothing it was doing was completed"})
			if err != nil {
				return err
			}
		}
		return nil
	}, func() {
		if o := s.observer(); o != nil {
			for range ids {
				o.AttemptFinished(string(Interrupted), "station-stopped", "station", 0)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("db: mark interrupted attempts: %w", err)
	}
	var out []Attempt
	for _, id := range ids {
		a, err := s.Attempt(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Attempt is an attempt as stored, with its steps, console log and
// artifacts when read one at a time.
type Attempt struct {
	ID            int64     `json:"id"`
	Serial        string    `json:"serial"`
	Slot          int       `json:"slot"`
	SlotName      string    `json:"slot_name"`
	Recipe        string    `json:"recipe"`
	RecipeVersion int       `json:"recipe_version"`
	RecipeSHA256  string    `json:"recipe_sha256"`
	Revision      string    `json:"revision"`
	ImageSHA256   string    `json:"image_sha256"`
	ImageVersion  string    `json:"image_version"`
	Strategy      string    `json:"strategy"`
	Outcome       Outcome   `json:"outcome"`
	Class         string    `json:"class"`
	Fault         string    `json:"fault"`
	Reason        string    `json:"reason"`
	Hint          string    `json:"hint"`
	LastStep      string    `json:"last_step"`
	Bytes         int64     `json:"bytes_written"`
	Operator      string    `json:"operator"`
	Started       time.Time `json:"started"`
	Finished      time.Time `json:"finished,omitzero"`
	// ConsolePruned says retention deleted the console log.
	ConsolePruned bool `json:"console_pruned,omitempty"`
	// Visit is the unit's visit the attempt belongs to (1 for its first
	// stay, 3 for its second return), in unit histories only.
	Visit     int        `json:"visit,omitempty"`
	Steps     []Step     `json:"steps,omitempty"`
	Console   string     `json:"console,omitempty"`
	Artifacts []Artifact `json:"artifacts,omitempty"`
}

// Duration returns how long the attempt took (so far, if it runs).
func (a Attempt) Duration() time.Duration {
	end := a.Finished
	if end.IsZero() {
		end = time.Now()
	}
	return end.Sub(a.Started)
}

const attemptCols = `id, COALESCE(unit_serial, ''), slot, slot_name, recipe, recipe_version, recipe_sha256, revision,
	image_sha256, image_version, strategy, outcome, class, fault, reason, hint, last_step, bytes_written, operator,
	started_at, finished_at, console_pruned`

func scanAttempt(sc interface{ Scan(...any) error }) (Attempt, error) {
	var a Attempt
	var started, finished sql.NullInt64
	var outcome string
	err := sc.Scan(&a.ID, &a.Serial, &a.Slot, &a.SlotName, &a.Recipe, &a.RecipeVersion, &a.RecipeSHA256, &a.Revision,
		&a.ImageSHA256, &a.ImageVersion, &a.Strategy, &outcome, &a.Class, &a.Fault, &a.Reason, &a.Hint, &a.LastStep,
		&a.Bytes, &a.Operator, &started, &finished, &a.ConsolePruned)
	a.Outcome, a.Started, a.Finished = Outcome(outcome), fromMS(started), fromMS(finished)
	return a, err
}

// Attempt returns one attempt with its steps, console log and artifacts.
func (s *Store) Attempt(ctx context.Context, id int64) (Attempt, error) {
	a, err := scanAttempt(s.r.QueryRowContext(ctx, `SELECT `+attemptCols+` FROM attempts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Attempt{}, fmt.Errorf("db: no attempt %d", id)
	}
	if err != nil {
		return Attempt{}, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, name, strategy, started_at, finished_at, outcome, detail FROM steps WHERE attempt_id = ? ORDER BY seq`, id)
	if err != nil {
		return a, err
	}
	for rows.Next() {
		var st Step
		var started, finished sql.NullInt64
		if err := rows.Scan(&st.Seq, &st.Name, &st.Strategy, &started, &finished, &st.Outcome, &st.Detail); err != nil {
			rows.Close()
			return a, err
		}
		st.Started, st.Finished = fromMS(started), fromMS(finished)
		a.Steps = append(a.Steps, st)
	}
	rows.Close()
	if a.Console, err = s.Console(ctx, id); err != nil {
		return a, err
	}
	a.Artifacts, err = s.Artifacts(ctx, id)
	return a, err
}

// Console returns an attempt's whole console log: compressed once the
// attempt ended, in chunks while it runs, empty once retention pruned it.
func (s *Store) Console(ctx context.Context, id int64) (string, error) {
	var z []byte
	err := s.r.QueryRowContext(ctx, `SELECT data FROM console_z WHERE attempt_id = ?`, id).Scan(&z)
	if err == nil {
		b, err := inflate(z)
		return string(b), err
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT data FROM console WHERE attempt_id = ? ORDER BY seq`, id)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var d []byte
		if err := rows.Scan(&d); err != nil {
			return "", err
		}
		b.Write(d)
	}
	return b.String(), rows.Err()
}

// Filter selects attempts. Zero fields select everything.
type Filter struct {
	Slot    int
	Serial  string
	Outcome Outcome
	Recipe  string
	Since   time.Time
	Until   time.Time
	Limit   int // 0 means 500
}

func (f Filter) where() (string, []any) {
	var conds []string
	var args []any
	if f.Slot != 0 {
		conds, args = append(conds, "slot = ?"), append(args, f.Slot)
	}
	if f.Serial != "" {
		conds, args = append(conds, "unit_serial = ?"), append(args, f.Serial)
	}
	if f.Outcome != "" {
		conds, args = append(conds, "outcome = ?"), append(args, string(f.Outcome))
	}
	if f.Recipe != "" {
		conds, args = append(conds, "recipe = ?"), append(args, f.Recipe)
	}
	if !f.Since.IsZero() {
		conds, args = append(conds, "started_at >= ?"), append(args, ms(f.Since))
	}
	if !f.Until.IsZero() {
		conds, args = append(conds, "started_at < ?"), append(args, ms(f.Until))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Attempts lists attempts, newest first, without steps or console.
func (s *Store) Attempts(ctx context.Context, f Filter) ([]Attempt, error) {
	where, args := f.where()
	limit := f.Limit
	if limit <= 0 {
		limit = 500
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+attemptCols+` FROM attempts`+where+` ORDER BY started_at DESC, id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Attempt
	for rows.Next() {
		a, err := scanAttempt(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// UnitHistory is a unit with every attempt on it, oldest first, each with
// its steps and console log.
type UnitHistory struct {
	Unit Unit `json:"unit"`
	// Visits is how many stays at the station the unit began: a visit
	// opens with its first judged attempt (a pass or a failure through its
	// fault) after the previous visit passed. Visits > 1 marks a repeat
	// visitor (a unit back for an RMA).
	Visits   int       `json:"visits"`
	Attempts []Attempt `json:"attempts"`
}

// Unit returns a unit and its history.
func (s *Store) Unit(ctx context.Context, serial string) (UnitHistory, error) {
	var h UnitHistory
	var first, last sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT serial, protocol, chip, revision, model, first_seen, last_seen FROM units WHERE serial = ?`, serial).
		Scan(&h.Unit.Serial, &h.Unit.Protocol, &h.Unit.Chip, &h.Unit.Revision, &h.Unit.Model, &first, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return h, fmt.Errorf("%w: no unit with serial number %q", ErrNotFound, serial)
	}
	if err != nil {
		return h, err
	}
	h.Unit.FirstSeen, h.Unit.LastSeen = fromMS(first), fromMS(last)
	rows, err := s.r.QueryContext(ctx, `SELECT `+attemptCols+` FROM attempts WHERE unit_serial = ? ORDER BY started_at, id`, serial)
	if err != nil {
		return h, err
	}
	defer rows.Close()
	for rows.Next() {
		a, err := scanAttempt(rows)
		if err != nil {
			return h, err
		}
		h.Attempts = append(h.Attempts, a)
	}
	if err := rows.Err(); err != nil {
		return h, err
	}
	rows.Close()
	firsts := map[int64]int{}
	vrows, err := s.r.QueryContext(ctx, `SELECT n, first_attempt FROM visits WHERE serial = ?`, serial)
	if err != nil {
		return h, err
	}
	for vrows.Next() {
		var n int
		var first int64
		if err := vrows.Scan(&n, &first); err != nil {
			vrows.Close()
			return h, err
		}
		firsts[first] = n
		h.Visits = max(h.Visits, n)
	}
	vrows.Close()
	visit := 0
	for i := range h.Attempts {
		a := &h.Attempts[i]
		if n, ok := firsts[a.ID]; ok {
			visit = n
		}
		a.Visit = visit
		full, err := s.Attempt(ctx, a.ID)
		if err != nil {
			return h, err
		}
		a.Steps, a.Console, a.Artifacts = full.Steps, full.Console, full.Artifacts
	}
	return h, nil
}

// HasUnit reports whether the record knows a unit by this serial number.
func (s *Store) HasUnit(ctx context.Context, serial string) (bool, error) {
	var one int
	err := s.r.QueryRowContext(ctx, `SELECT 1 FROM units WHERE serial = ?`, serial).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// Units returns every unit, most recently seen first.
func (s *Store) Units(ctx context.Context, limit int) ([]Unit, error) {
	if limit <= 0 {
		limit = 500
	}
	rows, err := s.r.QueryContext(ctx, `SELECT serial, protocol, chip, revision, model, first_seen, last_seen FROM units ORDER BY last_seen DESC LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Unit
	for rows.Next() {
		var u Unit
		var first, last sql.NullInt64
		if err := rows.Scan(&u.Serial, &u.Protocol, &u.Chip, &u.Revision, &u.Model, &first, &last); err != nil {
			return nil, err
		}
		u.FirstSeen, u.LastSeen = fromMS(first), fromMS(last)
		out = append(out, u)
	}
	return out, rows.Err()
}
