package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/unbrick/unbrick/db"
)

func TestUserCommand(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	steps := []struct {
		args  []string
		stdin string
		err   string // "" for success
		out   string
	}{
		{[]string{"add", "--data", dir, "--role", "supervisor", "ada"}, "correct horse\n", "", "account ada (supervisor) added"},
		{[]string{"add", "--data", dir, "ada"}, "another one\n", "exists already", ""},
		{[]string{"add", "--data", dir, "--role", "admin", "bob"}, "correct horse\n", "use one of operator, supervisor, engineer", ""},
		{[]string{"add", "--data", dir, "bob"}, "short\n", "too short", ""},
		{[]string{"add", "--data", dir, "--password", "hunter22", "bob"}, "", "--password is refused", ""},
		{[]string{"add", "--data", dir, "bob", "--role", "engineer"}, "", "flags go before the name", ""},
		{[]string{"add", "--data", dir, "--role", "engineer", "bob"}, "battery staple", "", "account bob (engineer) added"},
		{[]string{"passwd", "--data", dir, "ada"}, "new password 1\n", "", "password of ada changed"},
		{[]string{"passwd", "--data", dir, "nobody"}, "new password 1\n", "does not exist", ""},
		{[]string{"list", "--data", dir}, "", "", "engineer"},
		{[]string{"remove", "--data", dir, "bob"}, "", "", "account bob removed"},
		{[]string{"remove", "--data", dir, "bob"}, "", "does not exist", ""},
	}
	for _, s := range steps {
		var stdout, stderr bytes.Buffer
		err := userCommand(ctx, s.args, strings.NewReader(s.stdin), &stdout, &stderr)
		switch {
		case s.err == "" && err != nil:
			t.Errorf("user %v: %v", s.args, err)
		case s.err != "" && (err == nil || !strings.Contains(err.Error(), s.err)):
			t.Errorf("user %v = %v, want an error with %q", s.args, err, s.err)
		case !strings.Contains(stdout.String(), s.out):
			t.Errorf("user %v printed %q, want %q", s.args, stdout.String(), s.out)
		}
	}
	s, err := db.Open(filepath.Join(dir, "unbrick.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, err := s.User(ctx, "ada")
	if err != nil {
		t.Fatal(err)
	}
	if u.Role != "supervisor" || bcrypt.CompareHashAndPassword([]byte(u.Hash), []byte("new password 1")) != nil {
		t.Errorf("ada = %+v, want a supervisor whose hash matches the changed password", u)
	}
	if strings.Contains(u.Hash, "new password") {
		t.Errorf("the record holds the password itself: %q", u.Hash)
	}
}

// TestSupervisorPasswordFlagGone: the old shared-password flag fails with
// what to do instead.
func TestSupervisorPasswordFlagGone(t *testing.T) {
	for _, cmd := range []string{"serve", "demo"} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{cmd, "--supervisor-password", "s3cret"}, &stdout, &stderr)
		if err == nil || !strings.Contains(stderr.String()+err.Error(), "unbrick user add") {
			t.Errorf("%s --supervisor-password = %v (%s), want a message naming `unbrick user add`", cmd, err, stderr.String())
		}
	}
}
