package gpio

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/pin"
)

// Remote opens lines that another process drives, over a Unix socket: the
// virtual bench's units served by `unbrick sim --bench N` in their own
// process, so that a benchmark measures the station apart from its device
// models. The station opens these lines exactly as it opens a Pi's pins;
// every Out is a round trip that returns once the other side has driven
// its pin (and the unit behind it has seen the change). Requests from
// different goroutines travel on different connections.
//
// The wire is one text line each way per request, on one connection:
//
//	open NAME          -> ok | err MESSAGE
//	out NAME 0|1       -> ok | err MESSAGE
//	in NAME            -> ok | err MESSAGE      (release: the pin floats)
//	read NAME          -> ok 0|1 | err MESSAGE
//
// Names carry no spaces. ServeLines is the other side; it serves the
// requests of each connection in turn.
type Remote struct {
	Socket string // the Unix socket ServeLines listens on

	mu   sync.Mutex
	idle []*remoteConn // connections not in a request
}

// remoteConn is one connection to the other side.
type remoteConn struct {
	c  net.Conn
	rd *bufio.Reader
}

// Register makes names starting with prefix open through r.
func (r *Remote) Register(reg *Registry, prefix string) {
	reg.Register(prefix, "lines served over "+r.Socket, r.Open)
}

// Open asks the other side for the line name; it fails if that side has no
// such line.
func (r *Remote) Open(name string) (pgpio.PinIO, error) {
	if name == "" || strings.ContainsAny(name, " \t\r\n") {
		return nil, fmt.Errorf("remote line name %q: want a non-empty name without spaces", name)
	}
	if _, err := r.call("open", name); err != nil {
		return nil, err
	}
	return &remotePin{r: r, name: name}, nil
}

// Close closes the idle connections; the next request dials again.
func (r *Remote) Close() error {
	r.mu.Lock()
	idle := r.idle
	r.idle = nil
	r.mu.Unlock()
	var errs []error
	for _, c := range idle {
		errs = append(errs, c.c.Close())
	}
	return errors.Join(errs...)
}

// remoteTimeout bounds one request: the other side answers at once.
const remoteTimeout = 10 * time.Second

// call sends one request and returns the answer's argument after "ok".
// No lock is held across the round trip: a request takes an idle
// connection (or dials one) and gives it back, so slots switching their
// lines at once do not wait for each other.
func (r *Remote) call(verb string, args ...string) (string, error) {
	r.mu.Lock()
	var rc *remoteConn
	if n := len(r.idle); n > 0 {
		rc, r.idle = r.idle[n-1], r.idle[:n-1]
	}
	r.mu.Unlock()
	if rc == nil {
		c, err := net.DialTimeout("unix", r.Socket, remoteTimeout)
		if err != nil {
			return "", fmt.Errorf("remote lines at %s: %w (is `unbrick sim --bench` running?)", r.Socket, err)
		}
		rc = &remoteConn{c, bufio.NewReader(c)}
	}
	req := verb + " " + strings.Join(args, " ") + "\n"
	line, err := rc.roundTrip(req)
	if err != nil {
		rc.c.Close()
		return "", fmt.Errorf("remote lines at %s: %s: %w", r.Socket, strings.TrimSpace(req), err)
	}
	r.mu.Lock()
	r.idle = append(r.idle, rc)
	r.mu.Unlock()
	if rest, ok := strings.CutPrefix(line, "err "); ok {
		return "", errors.New(rest)
	}
	if line == "ok" {
		return "", nil
	}
	if rest, ok := strings.CutPrefix(line, "ok "); ok {
		return rest, nil
	}
	return "", fmt.Errorf("remote lines at %s: %s: malformed answer %q", r.Socket, strings.TrimSpace(req), line)
}

func (rc *remoteConn) roundTrip(req string) (string, error) {
	rc.c.SetDeadline(time.Now().Add(remoteTimeout))
	if _, err := io.WriteString(rc.c, req); err != nil {
		return "", err
	}
	line, err := rc.rd.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("no answer: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// remotePin is one line on the other side.
type remotePin struct {
	r    *Remote
	name string

	mu  sync.Mutex
	fn  pin.Func
	out pgpio.Level
}

var _ pgpio.PinIO = (*remotePin)(nil)

func (p *remotePin) String() string   { return p.name }
func (p *remotePin) Name() string     { return p.name }
func (p *remotePin) Number() int      { return -1 }
func (p *remotePin) Function() string { return string(p.Func()) }

// Halt does nothing: the Line above decides what safe means.
func (p *remotePin) Halt() error { return nil }

// Func returns what the pin was last set to do here.
func (p *remotePin) Func() pin.Func {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fn == "" {
		return pgpio.IN
	}
	return p.fn
}

func (p *remotePin) In(pull pgpio.Pull, edge pgpio.Edge) error {
	if edge != pgpio.NoEdge {
		return fmt.Errorf("remote line %s: edge detection is not served", p.name)
	}
	if _, err := p.r.call("in", p.name); err != nil {
		return err
	}
	p.mu.Lock()
	p.fn = pgpio.IN
	p.mu.Unlock()
	return nil
}

// Read asks the other side for the pin's level; it reads Low if the other
// side cannot answer.
func (p *remotePin) Read() pgpio.Level {
	v, err := p.r.call("read", p.name)
	return err == nil && v == "1"
}

func (p *remotePin) WaitForEdge(time.Duration) bool { return false }
func (p *remotePin) Pull() pgpio.Pull               { return pgpio.Float }
func (p *remotePin) DefaultPull() pgpio.Pull        { return pgpio.Float }

// Out drives the pin on the other side and returns once it has.
func (p *remotePin) Out(l pgpio.Level) error {
	v := "0"
	if l {
		v = "1"
	}
	if _, err := p.r.call("out", p.name, v); err != nil {
		return err
	}
	p.mu.Lock()
	p.fn, p.out = pgpio.OUT_HIGH, l
	if !l {
		p.fn = pgpio.OUT_LOW
	}
	p.mu.Unlock()
	return nil
}

func (p *remotePin) PWM(pgpio.Duty, physic.Frequency) error {
	return fmt.Errorf("remote line %s: PWM is not served", p.name)
}

// ServeLines answers Remote's requests on l with the pins open returns,
// one goroutine per connection, until ctx ends or l is closed.
func ServeLines(ctx context.Context, l net.Listener, open Opener) error {
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	pins := map[string]pgpio.PinIO{}
	lookup := func(name string) (pgpio.PinIO, error) {
		mu.Lock()
		defer mu.Unlock()
		if p, ok := pins[name]; ok {
			return p, nil
		}
		p, err := open(name)
		if err != nil {
			return nil, err
		}
		pins[name] = p
		return p, nil
	}
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			serveConn(c, lookup)
		}()
	}
}

func serveConn(c net.Conn, lookup func(string) (pgpio.PinIO, error)) {
	rd := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		answer := func(err error, v string) {
			switch {
			case err != nil:
				fmt.Fprintf(w, "err %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
			case v != "":
				fmt.Fprintf(w, "ok %s\n", v)
			default:
				w.WriteString("ok\n")
			}
		}
		if len(f) < 2 {
			answer(fmt.Errorf("malformed request %q: want VERB NAME [LEVEL]", strings.TrimSpace(line)), "")
		} else if p, err := lookup(f[1]); err != nil {
			answer(err, "")
		} else {
			switch {
			case f[0] == "open" && len(f) == 2:
				answer(nil, "")
			case f[0] == "out" && len(f) == 3 && (f[2] == "0" || f[2] == "1"):
				answer(p.Out(pgpio.Level(f[2] == "1")), "")
			case f[0] == "in" && len(f) == 2:
				answer(p.In(pgpio.Float, pgpio.NoEdge), "")
			case f[0] == "read" && len(f) == 2:
				v := "0"
				if p.Read() {
					v = "1"
				}
				answer(nil, v)
			default:
				answer(fmt.Errorf("malformed request %q: want open|in|read NAME or out NAME 0|1", strings.TrimSpace(line)), "")
			}
		}
		if w.Flush() != nil {
			return
		}
	}
}
