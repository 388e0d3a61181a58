package web

import (
	"net/http"
	"strings"
	"sync"

	"github.com/unbrick/unbrick/jobs"
)

// consoleKeep is how much of each slot's console the server keeps for the
// slot's detail view.
const consoleKeep = 4096

// consoles keeps the tail of every slot's console, from the bus.
type consoles struct {
	mu      sync.Mutex
	bySlot  map[int][]byte
	attempt map[int]int64
}

func (c *consoles) add(e jobs.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.Attempt != 0 && c.attempt[e.Slot] != e.Attempt {
		// A new attempt starts a new console.
		c.attempt[e.Slot] = e.Attempt
		c.bySlot[e.Slot] = nil
	}
	if e.Kind != jobs.KindConsole {
		return
	}
	b := append(c.bySlot[e.Slot], e.Text...)
	if len(b) > consoleKeep {
		b = append([]byte(nil), b[len(b)-consoleKeep:]...)
	}
	c.bySlot[e.Slot] = b
}

func (c *consoles) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.bySlot[n])
}

// follow keeps the consoles until the server closes. A console line lost
// because this reader fell behind is lost from the detail view only: the
// record keeps every byte.
func (s *Server) follow(sub *jobs.Sub) {
	defer s.wg.Done()
	defer sub.Close()
	for {
		select {
		case <-s.ctx.Done():
			return
		case e, ok := <-sub.C:
			if !ok {
				return
			}
			s.console.add(e)
		}
	}
}

// Console is the answer of GET /api/slots/{n}/console: the last lines the
// unit printed in its current or last attempt.
type Console struct {
	Slot    int      `json:"slot"`
	Attempt int64    `json:"attempt"`
	Lines   []string `json:"lines"`
}

func (s *Server) getConsole(w http.ResponseWriter, r *http.Request) {
	st, ok := s.slotParam(w, r)
	if !ok {
		return
	}
	text := strings.ReplaceAll(s.console.tail(st.Slot), "\r", "")
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		lines = []string{}
	}
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	writeJSON(w, http.StatusOK, Console{Slot: st.Slot, Attempt: st.Attempt, Lines: lines})
}
