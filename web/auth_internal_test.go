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
	tok := ss.create("Ada")
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
		if by, ok := ss.lookup(req); ok != tt.ok || (ok && by != "Ada") {
			t.Errorf("lookup after %v more = %q, %v, want %v", tt.after, by, ok, tt.ok)
		}
	}
	bad := httptest.NewRequest("POST", "/", nil)
	bad.AddCookie(&http.Cookie{Name: cookieName, Value: "forged"})
	if _, ok := ss.lookup(bad); ok {
		t.Errorf("lookup of a forged token = true, want false")
	}
}

func TestPasswordOK(t *testing.T) {
	tests := []struct {
		got, want string
		ok        bool
	}{
		{"secret", "secret", true},
		{"secret ", "secret", false},
		{"", "", false}, // no password configured: nobody gets in
		{"Secret", "secret", false},
	}
	for _, tt := range tests {
		if ok := passwordOK(tt.got, tt.want); ok != tt.ok {
			t.Errorf("passwordOK(%q, %q) = %v, want %v", tt.got, tt.want, ok, tt.ok)
		}
	}
}
