package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Roles of an account. An operator runs jobs; a supervisor also releases
// quarantined slots, cancels other people's jobs and changes settings; an
// engineer manages recipes and images.
const (
	RoleOperator   = "operator"
	RoleSupervisor = "supervisor"
	RoleEngineer   = "engineer"
)

// Roles lists the roles in order.
var Roles = []string{RoleOperator, RoleSupervisor, RoleEngineer}

// User is a named account. Hash is a password hash (bcrypt); the store
// never sees a password.
type User struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Hash    string    `json:"-"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// ErrNoUser is returned for an account that does not exist.
var ErrNoUser = errors.New("no such account")

func validRole(r string) bool {
	for _, k := range Roles {
		if r == k {
			return true
		}
	}
	return false
}

// AddUser creates an account. It fails if the name is taken.
func (s *Store) AddUser(ctx context.Context, u User) error {
	if u.Name == "" || u.Hash == "" {
		return fmt.Errorf("db: an account needs a name and a password hash")
	}
	if !validRole(u.Role) {
		return fmt.Errorf("db: account %s: role %q is not one of %v", u.Name, u.Role, Roles)
	}
	now := ms(time.Now())
	return s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRow(`SELECT COUNT(*) FROM users WHERE name = ?`, u.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("db: account %s exists already; use `unbrick user passwd` to change its password", u.Name)
		}
		_, err := tx.Exec(`INSERT INTO users (name, role, hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`, u.Name, u.Role, u.Hash, now, now)
		return err
	})
}

// SetUserHash changes an account's password hash.
func (s *Store) SetUserHash(ctx context.Context, name, hash string) error {
	return s.change(ctx, name, `UPDATE users SET hash = ?, updated_at = ? WHERE name = ?`, hash, ms(time.Now()), name)
}

// RemoveUser deletes an account.
func (s *Store) RemoveUser(ctx context.Context, name string) error {
	return s.change(ctx, name, `DELETE FROM users WHERE name = ?`, name)
}

func (s *Store) change(ctx context.Context, name, q string, args ...any) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		r, err := tx.Exec(q, args...)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return fmt.Errorf("db: account %q: %w", name, ErrNoUser)
		}
		return nil
	})
}

// User returns one account; the error wraps ErrNoUser if there is none.
func (s *Store) User(ctx context.Context, name string) (User, error) {
	var u User
	var c, m sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT name, role, hash, created_at, updated_at FROM users WHERE name = ?`, name).
		Scan(&u.Name, &u.Role, &u.Hash, &c, &m)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("db: account %q: %w", name, ErrNoUser)
	}
	u.Created, u.Updated = fromMS(c), fromMS(m)
	return u, err
}

// Users returns every account by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, role, hash, created_at, updated_at FROM users ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		var u User
		var c, m sql.NullInt64
		if err := rows.Scan(&u.Name, &u.Role, &u.Hash, &c, &m); err != nil {
			return nil, err
		}
		u.Created, u.Updated = fromMS(c), fromMS(m)
		out = append(out, u)
	}
	return out, rows.Err()
}
