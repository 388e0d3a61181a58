package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestServeDoesNotLogThePassword makes a supervisor account, runs
// `unbrick serve -v`, logs in as the page does (CSRF token from
// /api/session) with the right password and with a wrong one, and stops:
// neither password nor the session token appears in what the station
// printed.
func TestServeDoesNotLogThePassword(t *testing.T) {
	const pw = "correct-horse-battery-staple"
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	benchFile := filepath.Join(dir, "bench.yaml")
	os.WriteFile(benchFile, []byte(serveBench), 0o644)
	os.MkdirAll(filepath.Join(data, "ports"), 0o755)
	var uout, uerr bytes.Buffer
	if err := userCommand(context.Background(), []string{"add", "--data", data, "--role", "supervisor", "Ada"}, strings.NewReader(pw+"\n"), &uout, &uerr); err != nil {
		t.Fatalf("user add: %v (%s)", err, uerr.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-v", "--bench", benchFile, "--recipes", "../../testdata/recipes", "--key", testKey,
			"--data", data, "--listen", "127.0.0.1:0"}, &stdout, &stderr)
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
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar, Timeout: time.Minute}
	resp, err := client.Get("http://" + addr + "/api/session")
	if err != nil {
		t.Fatal(err)
	}
	var sess struct {
		CSRF string `json:"csrf"`
	}
	json.NewDecoder(resp.Body).Decode(&sess)
	resp.Body.Close()
	var token string
	for _, p := range []string{pw + "!", pw} {
		req, _ := http.NewRequest("POST", "http://"+addr+"/api/login", strings.NewReader(`{"name":"Ada","password":"`+p+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", sess.CSRF)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			if c.HttpOnly && c.Value != sess.CSRF {
				token = c.Value
			}
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
	if !strings.Contains(out, "action=login ") || !strings.Contains(out, "action=login-failed") {
		t.Fatalf("the log lacks the login it should record:\n%s", out)
	}
	if strings.Contains(out, pw) || strings.Contains(out, token) {
		t.Errorf("the station printed the password or the session token:\n%s", out)
	}
}
