package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Pool is a range of per-unit values (serial numbers, MAC addresses) to
// burn into units.
type Pool struct {
	Name   string
	Format string // fmt format for the number, e.g. "SN%08d" or "02:00:00:%02x:%02x:%02x" (see Allocation.Value)
	First  int64
	Last   int64
}

// Allocation is one value reserved from a pool for an attempt.
type Allocation struct {
	ID     int64
	Pool   string
	Number int64
	Value  string
}

// ErrPoolExhausted is returned when a pool has no value left.
var ErrPoolExhausted = errors.New("db: pool exhausted")

// CreatePool creates a pool, or checks an existing one has the same range.
func (s *Store) CreatePool(ctx context.Context, p Pool) error {
	if p.Name == "" || p.Format == "" || p.First > p.Last {
		return fmt.Errorf("db: pool %q: need a name, a format and first <= last", p.Name)
	}
	if _, err := formatValue(p.Format, p.First); err != nil {
		return fmt.Errorf("db: pool %q: %w", p.Name, err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		var format string
		var first, last int64
		err := tx.QueryRow(`SELECT format, first, last FROM pools WHERE name = ?`, p.Name).Scan(&format, &first, &last)
		if errors.Is(err, sql.ErrNoRows) {
			_, err = tx.Exec(`INSERT INTO pools (name, format, first, last, next) VALUES (?, ?, ?, ?, ?)`, p.Name, p.Format, p.First, p.Last, p.First)
			return err
		}
		if err != nil {
			return err
		}
		if format != p.Format || first != p.First || last != p.Last {
			return fmt.Errorf("pool %q exists with format %q and range %d..%d; it cannot be redefined", p.Name, format, first, last)
		}
		return nil
	})
}

// formatValue renders number n with the pool's format. A format with several
// %x-style verbs (a MAC address) gets n split into that many bytes, most
// significant first.
func formatValue(format string, n int64) (string, error) {
	verbs := strings.Count(format, "%") - 2*strings.Count(format, "%%")
	switch {
	case verbs == 1:
		return fmt.Sprintf(format, n), nil
	case verbs > 1 && verbs <= 8:
		args := make([]any, verbs)
		for i := verbs - 1; i >= 0; i-- {
			args[i] = n & 0xFF
			n >>= 8
		}
		return fmt.Sprintf(format, args...), nil
	}
	return "", fmt.Errorf("format %q must have between 1 and 8 verbs", format)
}

// Allocate reserves a value from pool for an attempt: the lowest value
// returned by a failed attempt if any, else the next new one. FinishAttempt
// commits it (on a pass) or returns it (otherwise), in the same transaction
// as the outcome.
func (s *Store) Allocate(ctx context.Context, pool string, attempt int64) (Allocation, error) {
	var a Allocation
	err := s.write(ctx, func(tx *sql.Tx) error {
		var format string
		var next, last int64
		err := tx.QueryRow(`SELECT format, next, last FROM pools WHERE name = ?`, pool).Scan(&format, &next, &last)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("no pool %q: create it first", pool)
		}
		if err != nil {
			return err
		}
		var reused sql.NullInt64
		err = tx.QueryRow(`SELECT MIN(number) FROM allocations r WHERE pool = ? AND state = 'released'
			AND NOT EXISTS (SELECT 1 FROM allocations l WHERE l.pool = r.pool AND l.number = r.number AND l.state IN ('reserved', 'committed'))`,
			pool).Scan(&reused)
		if err != nil {
			return err
		}
		n := next
		if reused.Valid {
			n = reused.Int64
		} else {
			if next > last {
				return fmt.Errorf("%w: %q has handed out every value up to %d", ErrPoolExhausted, pool, last)
			}
			if _, err := tx.Exec(`UPDATE pools SET next = ? WHERE name = ?`, next+1, pool); err != nil {
				return err
			}
		}
		v, err := formatValue(format, n)
		if err != nil {
			return err
		}
		res, err := tx.Exec(`INSERT INTO allocations (pool, number, value, state, attempt_id, updated_at) VALUES (?, ?, ?, 'reserved', ?, ?)`,
			pool, n, v, attempt, ms(time.Now()))
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		a = Allocation{ID: id, Pool: pool, Number: n, Value: v}
		return err
	})
	if err != nil {
		return Allocation{}, fmt.Errorf("db: allocate from %q for attempt %d: %w", pool, attempt, err)
	}
	return a, nil
}

// Committed returns the values of a pool committed to units, by value.
func (s *Store) Committed(ctx context.Context, pool string) (map[string]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT value, COALESCE(unit_serial, '') FROM allocations WHERE pool = ? AND state = 'committed'`, pool)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var v, u string
		if err := rows.Scan(&v, &u); err != nil {
			return nil, err
		}
		out[v] = u
	}
	return out, rows.Err()
}

// Quarantine is a slot taken out of service.
type Quarantine struct {
	Slot   int       `json:"slot"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
	By     string    `json:"by"`
}

// Quarantine takes a slot out of service. Quarantining a slot that already
// is keeps the first reason.
func (s *Store) Quarantine(ctx context.Context, q Quarantine) error {
	if q.Since.IsZero() {
		q.Since = time.Now()
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO quarantine (slot, reason, since, by) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			q.Slot, q.Reason, ms(q.Since), q.By)
		return err
	})
}

// ReleaseSlot puts a quarantined slot back in service. It reports whether
// the slot was quarantined.
func (s *Store) ReleaseSlot(ctx context.Context, slot int, by string) (bool, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE quarantine SET released_at = ?, released_by = ? WHERE slot = ? AND released_at IS NULL`,
			ms(time.Now()), by, slot)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n > 0, err
}

// Quarantined returns the slots out of service.
func (s *Store) Quarantined(ctx context.Context) ([]Quarantine, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT slot, reason, since, by FROM quarantine WHERE released_at IS NULL ORDER BY slot`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Quarantine
	for rows.Next() {
		var q Quarantine
		var since sql.NullInt64
		if err := rows.Scan(&q.Slot, &q.Reason, &since, &q.By); err != nil {
			return nil, err
		}
		q.Since = fromMS(since)
		out = append(out, q)
	}
	return out, rows.Err()
}

// RecentFinished returns the last n finished attempts of a slot, newest
// first, ignoring those finished before the slot's last release from
// quarantine (a released slot starts with a clean slate).
func (s *Store) RecentFinished(ctx context.Context, slot, n int) ([]Attempt, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+attemptCols+` FROM attempts
		WHERE slot = ? AND outcome IN ('passed', 'failed')
		AND finished_at > COALESCE((SELECT MAX(released_at) FROM quarantine WHERE slot = ?), 0)
		ORDER BY finished_at DESC, id DESC LIMIT ?`, slot, slot, n)
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
