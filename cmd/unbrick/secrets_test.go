package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestServeDoesNotLogThePassword runs `unbrick serve -v` with a supervisor
// password, logs in with it and with a wrong one, and stops: neither
// password nor the session token appears in what the station printed.
func TestServeDoesNotLogThePassword(t *testing.T) {
	const pw = "correct-horse-battery-staple"
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	benchFile := filepath.Join(dir, "bench.yaml")
	os.WriteFile(benchFile, []byte(serveBench), 0o644)
	os.MkdirAll(filepath.Join(data, "ports"), 0o755)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-v", "--bench", benchFile, "--recipes", "../../testdata/recipes", "--key", testKey,
			"--data", data, "--listen", "127.0.0.1:0", "--supervisor-password", pw}, &stdout, &stderr)
	}()
	var addr string
	re := regexp.MustCompile(`http://([0-9.:]+)/`)
	waitFor(t, "the page's address", time.Minute, func() bool {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			addr = m[1]
			return true
		}
		return false
	})
	var token string
	for _, p := range []string{pw + "!", pw} {
		resp, err := http.Post("http://"+addr+"/api/login", "application/json", strings.NewReader(`{"name":"Ada","password":"`+p+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			token = c.Value
		}
	}
	if token == "" {
		t.Fatal("the right password opened no session")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("serve did not stop")
	}
	out := stdout.String() + stderr.String()
	if !strings.Contains(out, "supervisor logged in") {
		t.Fatalf("the log lacks the login it should record:\n%s", out)
	}
	if strings.Contains(out, pw) || strings.Contains(out, token) {
		t.Errorf("the station printed the password or the session token:\n%s", out)
	}
}
