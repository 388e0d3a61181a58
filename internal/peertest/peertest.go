// Package peertest runs real implementations of the protocols unbrick speaks
// (real U-Boot in QEMU, real optiboot in simavr, stm32flash, avrdude, lrzsz,
// esptool-js) beside the project's tests, so that clients and device models
// are held against a peer nobody here wrote.
//
// A test asks for its tools with Need. Outside CI a missing tool skips the
// test with a message naming the package that brings it; in CI (the CI
// environment variable is set, as .ci/run's caller sets it) a missing tool
// fails the test, because CI installs every peer through scripts/deps.sh.
package peertest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// InCI reports whether the tests run in CI, where no peer may be skipped.
func InCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "0" && v != "false"
}

// Missing ends a test that cannot run because what is named is not on this
// machine: a skip with the message outside CI, a failure in CI.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI must install it: see scripts/deps.sh)", msg)
	}
	t.Skipf("%s; `make deps` installs it (never skipped in CI)", msg)
}

// Tool is a program a test needs and the Debian package that installs it.
type Tool struct {
	Name    string // the command, looked up on PATH, or an absolute path
	Package string // the Debian package, for the message
}

// Need returns the path of each tool, in order, or ends the test through
// Missing when one is not installed.
func Need(t testing.TB, tools ...Tool) []string {
	t.Helper()
	paths := make([]string, len(tools))
	for i, tl := range tools {
		p, err := exec.LookPath(tl.Name)
		if err != nil {
			Missing(t, "%s is not installed (Debian package %s)", tl.Name, tl.Package)
			return nil
		}
		paths[i] = p
	}
	return paths
}

// NeedFile returns path if it exists, or ends the test through Missing with
// what brings it.
func NeedFile(t testing.TB, path, bringer string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, "%s is missing (%s)", path, bringer)
	}
	return path
}

// Peer is a running peer process.
type Peer struct {
	Cmd *exec.Cmd
	// Path is the pseudo-terminal the peer announced, if it announced one.
	Path string

	mu  sync.Mutex
	out strings.Builder // everything the peer printed on stdout and stderr
}

// Output returns what the peer printed so far on stdout and stderr.
func (p *Peer) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *Peer) write(b []byte) {
	p.mu.Lock()
	p.out.Write(b)
	p.mu.Unlock()
}

// Start runs argv and waits, up to wait, for a line of its output (stdout or
// stderr) to match announce, whose first group is the pseudo-terminal path
// the peer serves (QEMU prints "char device redirected to /dev/pts/N"). A nil
// announce returns at once. The process is killed when the test ends.
func Start(t testing.TB, announce *regexp.Regexp, wait time.Duration, argv ...string) *Peer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = 5 * time.Second
	p := &Peer{Cmd: cmd}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", argv[0], err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		pw.Close()
		close(done)
	}()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			line := sc.Bytes()
			p.write(append(line, '\n'))
			if !sent && announce != nil {
				if m := announce.FindSubmatch(line); m != nil {
					found <- string(m[1])
					sent = true
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("%s printed:\n%s", argv[0], p.Output())
		}
	})
	if announce == nil {
		return p
	}
	select {
	case p.Path = <-found:
		return p
	case <-done:
		t.Fatalf("%s exited before announcing its port: %v\n%s", argv[0], cmd.ProcessState, p.Output())
	case <-time.After(wait):
		t.Fatalf("%s did not announce its port within %s\n%s", argv[0], wait, p.Output())
	}
	return nil
}

// Dir is the folder where scripts/deps.sh builds the peers that no Debian
// package ships ready to run (optiboot builds, the simavr harness,
// esptool-js): .peers at the top of the repository. UNBRICK_PEERS overrides it.
func Dir() string {
	if d := os.Getenv("UNBRICK_PEERS"); d != "" {
		return d
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ".peers"
	}
	return filepath.Join(filepath.Dir(file), "..", "..", ".peers")
}
