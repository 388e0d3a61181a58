package db

import (
	"context"
	"database/sql"
	"time"
)

// AuditEntry is one thing someone did at the station: who, in which role,
// what, on which slot, and from where.
type AuditEntry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Who    string    `json:"who"`
	Role   string    `json:"role"`
	Action string    `json:"action"` // e.g. "start", "cancel", "release", "login"
	Slot   int       `json:"slot,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Remote string    `json:"remote,omitempty"`
}

// Audit appends e to the audit log, durably. A zero At means now.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO audit (at, who, role, action, slot, detail, remote) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			ms(e.At), e.Who, e.Role, e.Action, e.Slot, e.Detail, e.Remote)
		return err
	})
}

// AuditLog returns the entries since a time (zero: all), newest first, at
// most limit (0 means 500).
func (s *Store) AuditLog(ctx context.Context, since time.Time, limit int) ([]AuditEntry, error) {
	if limit <= 0 {
		limit = 500
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, at, who, role, action, slot, detail, remote FROM audit WHERE at >= ? ORDER BY at DESC, id DESC LIMIT ?`, ms(since), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at sql.NullInt64
		if err := rows.Scan(&e.ID, &at, &e.Who, &e.Role, &e.Action, &e.Slot, &e.Detail, &e.Remote); err != nil {
			return nil, err
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
