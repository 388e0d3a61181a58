package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/websocket"

	"github.com/unbrick/unbrick/jobs"
)

// Message is what the websocket sends: first a snapshot of every slot, then
// updates with the slots that changed since the previous message, each in
// its latest state. A snapshot can come again when the connection missed
// events; the client replaces its tiles then.
type Message struct {
	Type  string     `json:"type"` // "snapshot" or "update"
	Slots []SlotView `json:"slots"`
}

// subBuffer is how many events a connection's bus subscription holds while
// its writer is busy; the bus drops events past it (never blocking the
// publisher) and the writer then sends a fresh snapshot.
const subBuffer = 1024

func (s *Server) websocket(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "the station is shutting down")
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	// The default CheckOrigin refuses pages of other sites.
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered the request
	}
	defer conn.Close()
	// Subscribe before the snapshot: a change between the two is sent
	// again, never lost.
	sub := s.cfg.Bus.Subscribe(subBuffer)
	defer sub.Close()
	s.mu.Lock()
	s.clients++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.clients--
		s.mu.Unlock()
	}()

	readDone := make(chan struct{})
	go s.read(conn, readDone)
	err = s.write(conn, sub, readDone)
	if errors.Is(err, errSlow) || isTimeout(err) {
		s.mu.Lock()
		s.dropped++
		s.mu.Unlock()
		s.log.Warn("websocket client dropped: it does not read its updates", "remote", r.RemoteAddr, "err", err)
	}
	conn.Close() // ends the reader
	<-readDone
}

// errSlow ends a connection that fell behind.
var errSlow = errors.New("web: websocket client too slow")

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// read consumes what the client sends (nothing but control frames is
// expected) so that pongs and the close handshake are handled, and closes
// done when the connection ends.
func (s *Server) read(conn *websocket.Conn, done chan<- struct{}) {
	defer close(done)
	conn.SetReadLimit(4096)
	alive := func() { conn.SetReadDeadline(time.Now().Add(s.cfg.PingInterval + s.cfg.WriteTimeout)) }
	alive()
	conn.SetPongHandler(func(string) error { alive(); return nil })
	for {
		if _, _, err := conn.NextReader(); err != nil {
			return
		}
		alive()
	}
}

// write is the connection's one writer: it sends the snapshot, then the
// changed slots, each in its latest state, as soon as it can: what queued
// while it was writing, or within Config.Interval of its previous message,
// goes out together.
func (s *Server) write(conn *websocket.Conn, sub *jobs.Sub, readDone <-chan struct{}) error {
	send := func(typ string, slots []SlotView) error {
		b, err := json.Marshal(Message{Type: typ, Slots: slots})
		if err != nil {
			return err
		}
		conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
			if isTimeout(err) {
				return fmt.Errorf("%w: a write blocked for %v", errSlow, s.cfg.WriteTimeout)
			}
			return err
		}
		return nil
	}
	goodbye := func() {
		conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, "the station is shutting down"),
			time.Now().Add(time.Second))
	}
	if err := send("snapshot", s.views(s.cfg.Tracker.Slots())); err != nil {
		return err
	}
	ping := time.NewTicker(s.cfg.PingInterval)
	defer ping.Stop()

	dirty := map[int]bool{}
	var nums []int
	var lastSent time.Time
	lost := sub.Dropped()
	// take notes an event; it reports false when the subscription ended.
	take := func(e jobs.Event, ok bool) bool {
		if !ok {
			return false
		}
		if e.Kind != jobs.KindConsole { // console text changes no tile
			dirty[e.Slot] = true
		}
		return true
	}
	for {
		select {
		case <-s.ctx.Done():
			goodbye()
			return errClosed
		case <-readDone:
			return nil
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.cfg.WriteTimeout)); err != nil {
				return err
			}
			continue
		case e, ok := <-sub.C:
			if !take(e, ok) {
				return nil
			}
		}
		// A change after a quiet spell goes out at once; one within the
		// batching window of the last message waits for the rest of the
		// window, gathering what else changes meanwhile, so that a burst
		// across many slots costs one message. The rate per slot is the
		// publisher's (jobs.ProgressEvery), never this wait's.
		if wait := s.cfg.Interval - time.Since(lastSent); s.cfg.Interval > 0 && wait > 0 {
			t := time.NewTimer(wait)
		gather:
			for {
				select {
				case <-t.C:
					break gather
				case <-s.ctx.Done():
					t.Stop()
					goodbye()
					return errClosed
				case <-readDone:
					t.Stop()
					return nil
				case e, ok := <-sub.C:
					if !take(e, ok) {
						t.Stop()
						return nil
					}
				}
			}
		}
	drain:
		for {
			select {
			case e, ok := <-sub.C:
				if !take(e, ok) {
					return nil
				}
			default:
				break drain
			}
		}
		if d := sub.Dropped(); d != lost {
			// The bus dropped events for this connection while a write
			// was slow: the tracker still knows every slot, so send them
			// all.
			lost = d
			clear(dirty)
			if err := send("snapshot", s.views(s.cfg.Tracker.Slots())); err != nil {
				return err
			}
			continue
		}
		if len(dirty) == 0 {
			continue
		}
		// Only the changed slots are copied out of the tracker: copying
		// every tile for every client at every interval was the station's
		// largest allocation under `unbrick bench`.
		nums = nums[:0]
		for n := range dirty {
			nums = append(nums, n)
		}
		slices.Sort(nums)
		slots := make([]SlotView, 0, len(nums))
		for _, n := range nums {
			if st, ok := s.cfg.Tracker.Slot(n); ok {
				slots = append(slots, s.view(st))
			}
		}
		clear(dirty)
		if err := send("update", slots); err != nil {
			return err
		}
		lastSent = time.Now()
	}
}
