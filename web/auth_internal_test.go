package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestSessionExpires(t *testing.T) {
	now := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	ss := newSessions(time.Hour)
	ss.now = func() time.Time { return now }
	tok, _ := ss.create("Ada", RoleSupervisor)
	req := httptest.NewRequest("POST", "/api/slots/1/release", nil)
	req.AddCookie(&http.Cookie{Name: cookieName, Value: tok})
	tests := []struct {
		after time.Duration
		ok    bool
	}{
		{0, true},
		{59 * time.Minute, true},
		{61 * time.Minute, false},
		{0, false}, // an expired session is gone for good
	}
	for _, tt := range tests {
		now = now.Add(tt.after)
		if s, ok := ss.lookup(req); ok != tt.ok || (ok && (s.name != "Ada" || s.role != RoleSupervisor || s.csrf == "")) {
			t.Errorf("lookup after %v more = %+v, %v, want %v", tt.after, s, ok, tt.ok)
		}
	}
	bad := httptest.NewRequest("POST", "/", nil)
	bad.AddCookie(&http.Cookie{Name: cookieName, Value: "forged"})
	if _, ok := ss.lookup(bad); ok {
		t.Errorf("lookup of a forged token = true, want false")
	}
}

// TestRolePerms: the table of who may do what, as the issue gives it.
func TestRolePerms(t *testing.T) {
	tests := []struct {
		role string
		p    Perm
		want bool
	}{
		{RoleOperator, PermRun, true},
		{RoleOperator, PermCancelAny, false},
		{RoleOperator, PermRelease, false},
		{RoleOperator, PermSettings, false},
		{RoleOperator, PermRecipes, false},
		{RoleSupervisor, PermRun, true},
		{RoleSupervisor, PermCancelAny, true},
		{RoleSupervisor, PermRelease, true},
		{RoleSupervisor, PermSettings, true},
		{RoleSupervisor, PermRecipes, false},
		{RoleEngineer, PermRun, true},
		{RoleEngineer, PermRecipes, true},
		{RoleEngineer, PermRelease, false},
		{"", PermRun, false},
	}
	for _, tt := range tests {
		if got := Can(tt.role, tt.p); got != tt.want {
			t.Errorf("Can(%q, %s) = %v, want %v", tt.role, tt.p, got, tt.want)
		}
	}
}

func TestHashPassword(t *testing.T) {
	if _, err := HashPassword("short"); err == nil {
		t.Error("HashPassword(short) = nil error, want too short")
	}
	h, err := HashPassword("correct horse")
	if err != nil || len(h) < 50 || h[:4] != "$2a$" {
		t.Errorf("HashPassword = %q, %v, want a bcrypt hash", h, err)
	}
}
