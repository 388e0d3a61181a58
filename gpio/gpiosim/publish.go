package gpiosim

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"periph.io/x/conn/v3/gpio"
)

// Publish writes the levels of the bank's pins to path now and again after
// every change, so that another process (a test, a training tool) can read
// the simulated lines as a meter on a real bench would. Each line of the
// file is a pin's name and its state: "high", "low", or "input" (not
// driven). The file is replaced atomically. Pins created after Publish are
// not watched; call it once the bench is wired.
func (b *Bank) Publish(path string) error {
	p := &publisher{b: b, path: path}
	if err := p.write(); err != nil {
		return err
	}
	for _, n := range b.Names() {
		b.Lookup(n).Listen(func(gpio.Level) { p.write() })
	}
	return nil
}

type publisher struct {
	mu   sync.Mutex
	b    *Bank
	path string
}

func (p *publisher) write() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := p.b.Names()
	sort.Strings(names)
	var sb strings.Builder
	for _, n := range names {
		pin := p.b.Lookup(n)
		state := "input"
		if pin.Func() != gpio.IN {
			state = "low"
			if pin.Level() == gpio.High {
				state = "high"
			}
		}
		fmt.Fprintf(&sb, "%s %s\n", n, state)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p.path), ".lines-*")
	if err != nil {
		return fmt.Errorf("gpiosim: publish: %w", err)
	}
	_, err = tmp.WriteString(sb.String())
	if e := tmp.Close(); err == nil {
		err = e
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("gpiosim: publish: %w", err)
	}
	return nil
}

// ReadPublished reads a file Publish wrote: each pin's state by name.
func ReadPublished(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		name, state, ok := strings.Cut(l, " ")
		if !ok || (state != "high" && state != "low" && state != "input") {
			return nil, fmt.Errorf("%s:%d: %q is not NAME high|low|input", path, i+1, l)
		}
		out[name] = state
	}
	return out, nil
}
