package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/unbrick/unbrick/jobs"
	"github.com/unbrick/unbrick/web"
)

func wsURL(b *bench) string { return "ws" + strings.TrimPrefix(b.ts.URL, "http") + "/ws" }

func dial(t *testing.T, b *bench, d *websocket.Dialer) *websocket.Conn {
	t.Helper()
	if d == nil {
		d = websocket.DefaultDialer
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, resp, err := d.DialContext(ctx, wsURL(b), nil)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", wsURL(b), err, resp)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readMsg(t *testing.T, c *websocket.Conn) web.Message {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var m web.Message
	if err := c.ReadJSON(&m); err != nil {
		t.Fatalf("reading the websocket: %v", err)
	}
	return m
}

// until reads messages, keeping the latest view of every slot, until ok
// holds.
func until(t *testing.T, c *websocket.Conn, slots map[int]web.SlotView, ok func(map[int]web.SlotView) bool) (messages int) {
	t.Helper()
	for !ok(slots) {
		m := readMsg(t, c)
		messages++
		if m.Type != "update" && m.Type != "snapshot" {
			t.Fatalf("message type %q, want update or snapshot", m.Type)
		}
		for _, v := range m.Slots {
			slots[v.Slot] = v
		}
	}
	return messages
}

func TestWebsocketSnapshotThenLive(t *testing.T) {
	b := newBench(t, nil)
	b.bus.Publish(jobs.Event{Slot: 3, Kind: jobs.KindState, State: jobs.Present, Serial: "S3"})
	c := dial(t, b, nil)

	m := readMsg(t, c)
	if m.Type != "snapshot" || len(m.Slots) != 3 {
		t.Fatalf("first message = %s with %d slots, want a snapshot of 3", m.Type, len(m.Slots))
	}
	if m.Slots[2].State != jobs.Present || m.Slots[2].Serial != "S3" || !m.Slots[2].Start {
		t.Errorf("snapshot slot 3 = %+v, want present, S3, startable", m.Slots[2])
	}
	slots := map[int]web.SlotView{}
	for _, v := range m.Slots {
		slots[v.Slot] = v
	}

	b.bus.Publish(jobs.Event{Slot: 1, Attempt: 7, Kind: jobs.KindState, State: jobs.Running, Serial: "S1"})
	b.bus.Publish(jobs.Event{Slot: 1, Attempt: 7, Kind: jobs.KindStep, Step: "erase"})
	b.bus.Publish(jobs.Event{Slot: 1, Attempt: 7, Kind: jobs.KindStep, Step: "write"})
	b.bus.Publish(jobs.Event{Slot: 1, Attempt: 7, Kind: jobs.KindProgress, Done: 3, Total: 4})
	until(t, c, slots, func(s map[int]web.SlotView) bool {
		v := s[1]
		return v.State == jobs.Running && v.Step == "write" && v.Progress == 0.75
	})
	if v := slots[1]; v.Serial != "S1" || v.Attempt != 7 {
		t.Errorf("slot 1 = %+v, want serial S1, attempt 7", v)
	}

	b.bus.Publish(jobs.Event{Slot: 1, Attempt: 7, Kind: jobs.KindState, State: jobs.Failed, Text: "verify failed at 0x08000100",
		Class: "verify-mismatch", Fault: jobs.UnitFault, Hint: "reject the unit"})
	until(t, c, slots, func(s map[int]web.SlotView) bool { return s[1].State == jobs.Failed })
	if v := slots[1]; v.Reason != "verify failed at 0x08000100" || v.Class != "verify-mismatch" || v.Hint != "reject the unit" || v.Fault != jobs.UnitFault {
		t.Errorf("failed slot 1 = %+v, want the reason, class, fault and hint", v)
	}
}

func TestWebsocketCoalesces(t *testing.T) {
	// Every change within the batching window goes out as one message,
	// each slot in its latest state: a burst published at once, and a
	// stream paced slower than the writer (one change every 2 ms), which
	// without the window would cost a message a change.
	tests := []struct {
		name string
		pace time.Duration
	}{
		{name: "burst"},
		{name: "paced", pace: 2 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBench(t, func(c *web.Config) { c.Interval = 2 * time.Second })
			c := dial(t, b, nil)
			readMsg(t, c) // the snapshot

			const events = 200
			for i := range events {
				b.bus.Publish(jobs.Event{Slot: 2, Kind: jobs.KindProgress, Done: int64(i + 1), Total: events})
				b.bus.Publish(jobs.Event{Slot: 3, Kind: jobs.KindStep, Step: "write", Text: "block"})
				if tt.pace > 0 {
					time.Sleep(tt.pace) // pacing the producer, not waiting for the server
				}
			}
			slots := map[int]web.SlotView{}
			n := until(t, c, slots, func(s map[int]web.SlotView) bool { return s[2].Progress == 1 && s[3].Step == "write" })
			if n >= 10 {
				t.Errorf("%d events became %d messages, want them coalesced into a few", 2*events, n)
			}
		})
	}
}

func TestWebsocketSendsAtOnce(t *testing.T) {
	// A change after a quiet spell is not held for the batching window:
	// with a window of an hour it still arrives (the read deadline is 20 s).
	b := newBench(t, func(c *web.Config) { c.Interval = time.Hour })
	c := dial(t, b, nil)
	readMsg(t, c) // the snapshot

	b.bus.Publish(jobs.Event{Slot: 2, Kind: jobs.KindProgress, Step: "write app", Done: 1, Total: 4})
	m := readMsg(t, c)
	if m.Type != "update" || len(m.Slots) != 1 || m.Slots[0].Slot != 2 || m.Slots[0].Progress != 0.25 {
		t.Errorf("message = %+v, want an update of slot 2 at 25%%", m)
	}
}

func TestWebsocketDropsSlowClient(t *testing.T) {
	b := newBench(t, func(c *web.Config) {
		c.WriteTimeout = 300 * time.Millisecond
		c.Interval = time.Millisecond
	})
	// The slow client reads nothing.
	slow := dial(t, b, nil)
	healthy := dial(t, b, nil)
	readMsg(t, healthy)
	healthyDone := make(chan error, 1)
	go func() {
		// The healthy client keeps reading until the end.
		for {
			healthy.SetReadDeadline(time.Now().Add(60 * time.Second))
			_, m, err := healthy.ReadMessage()
			if err != nil {
				healthyDone <- err
				return
			}
			if bytes.Contains(m, []byte(`"step":"the end"`)) {
				healthyDone <- nil
				return
			}
		}
	}()

	// Publish large updates until the server gives up on the slow client.
	// Publish never waits for it: if it did, this loop would never see the
	// client dropped.
	big := strings.Repeat("x", 64<<10)
	published := make(chan int)
	go func() {
		n := 0
		for ; b.srv.Dropped() == 0; n++ {
			b.bus.Publish(jobs.Event{Slot: 1 + n%3, Kind: jobs.KindLog, Text: big})
		}
		published <- n
	}()
	select {
	case n := <-published:
		t.Logf("the slow client was dropped after %d events", n)
	case <-time.After(60 * time.Second):
		t.Fatal("the slow client was not dropped within 60 s, or Publish blocked")
	}
	b.bus.Publish(jobs.Event{Slot: 1, Kind: jobs.KindStep, Step: "the end"})
	if err := <-healthyDone; err != nil {
		t.Errorf("the healthy client: %v, want it to get every change", err)
	}

	// The slow client finds its connection closed once it reads what the
	// kernel buffered.
	slow.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		if _, _, err := slow.NextReader(); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the slow client's connection is still open after the drop")
			}
			break
		}
	}
	var h web.Health
	r := do(t, b.client(t), "GET", b.ts.URL+"/healthz", "")
	if err := json.Unmarshal([]byte(r.body), &h); err != nil || h.Dropped != 1 {
		t.Errorf("GET /healthz = %s, want dropped 1", r.body)
	}
}

func TestWebsocketOriginAndClose(t *testing.T) {
	b := newBench(t, nil)
	h := http.Header{"Origin": {"http://evil.example"}}
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL(b), h); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("dial from another site's page = %v, %v; want 403", resp, err)
	}

	c := dial(t, b, nil)
	readMsg(t, c)
	b.srv.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, _, err := c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("read after Server.Close = %v, want close 1001 (going away)", err)
	}
	if n := b.srv.Clients(); n != 0 {
		t.Errorf("Clients() after Close = %d, want 0", n)
	}
}
