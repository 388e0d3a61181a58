package db

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUsers(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "u.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.AddUser(ctx, User{Name: "ada", Role: RoleSupervisor, Hash: "h1"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"taken name", s.AddUser(ctx, User{Name: "ada", Role: RoleOperator, Hash: "h"}), "exists already"},
		{"bad role", s.AddUser(ctx, User{Name: "bob", Role: "admin", Hash: "h"}), "not one of"},
		{"no hash", s.AddUser(ctx, User{Name: "bob", Role: RoleOperator}), "password hash"},
		{"passwd of nobody", s.SetUserHash(ctx, "nobody", "h"), "no such account"},
		{"remove nobody", s.RemoveUser(ctx, "nobody"), "no such account"},
	}
	for _, tt := range tests {
		if tt.err == nil || !strings.Contains(tt.err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one with %q", tt.name, tt.err, tt.want)
		}
	}
	if err := s.SetUserHash(ctx, "ada", "h2"); err != nil {
		t.Fatal(err)
	}
	u, err := s.User(ctx, "ada")
	if err != nil || u.Hash != "h2" || u.Role != RoleSupervisor || u.Created.IsZero() {
		t.Errorf("User(ada) = %+v, %v, want supervisor with hash h2", u, err)
	}
	if err := s.RemoveUser(ctx, "ada"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.User(ctx, "ada"); !errors.Is(err, ErrNoUser) {
		t.Errorf("User(ada) after remove: %v, want ErrNoUser", err)
	}
}

func TestAuditLog(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	for i, a := range []string{"login", "start", "cancel"} {
		if err := s.Audit(ctx, AuditEntry{At: t0.Add(time.Duration(i) * time.Minute), Who: "ada", Role: RoleSupervisor, Action: a, Slot: i, Remote: "127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	log, err := s.AuditLog(ctx, t0.Add(time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 2 || log[0].Action != "cancel" || log[1].Action != "start" || log[0].Slot != 2 || !log[0].At.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("AuditLog since 08:01 = %+v, want cancel then start", log)
	}
}
