package serialport

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"
)

// Change is what happened to a watched port.
type Change string

// The changes Watch reports.
const (
	Appeared Change = "appeared" // a port now matches (a unit plugged in)
	Vanished Change = "vanished" // the port that matched is gone (unplugged)
	Trouble  Change = "trouble"  // the match cannot be resolved (two adapters match it)
)

// Event is a change of one watched port.
type Event struct {
	Time   time.Time
	Key    int // the match's key in the map given to Watch (a slot number)
	Change Change
	Path   string // the port's path: found (Appeared) or lost (Vanished)
	Device string // the device the path resolved to
	Err    error  // why, for Trouble
}

func (e Event) String() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Key, e.Change, e.Err)
	}
	return fmt.Sprintf("%d %s %s", e.Key, e.Change, e.Path)
}

// DefaultInterval is how often Watch looks when given no interval; a unit
// plugged in is noticed well within a second.
const DefaultInterval = 250 * time.Millisecond

type seen struct {
	path, dev string
	trouble   error
}

func text(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Watch reports ports matching the given matches as they appear and vanish,
// looking every interval (0 is DefaultInterval). It first reports every port
// present at the start as Appeared, then only changes; a port replaced by
// another between two looks (the device behind its link changed) is
// reported Vanished then Appeared. The channel closes when ctx ends. Events
// are few; a reader that stops reading stalls only the watcher.
//
// Time is the time package's, so a test under testing/synctest drives it;
// the Opener's List and sysfs root stand in for the hardware.
func (o *Opener) Watch(ctx context.Context, interval time.Duration, matches map[int]Match) <-chan Event {
	if interval <= 0 {
		interval = DefaultInterval
	}
	keys := make([]int, 0, len(matches))
	for k := range matches {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	ch := make(chan Event, len(keys)+1)
	go func() {
		defer close(ch)
		state := make(map[int]seen, len(keys))
		send := func(e Event) bool {
			select {
			case ch <- e:
				return true
			case <-ctx.Done():
				return false
			}
		}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			for _, k := range keys {
				now := o.look(matches[k])
				was := state[k]
				state[k] = now
				t := time.Now()
				if was.path != "" && (now.path != was.path || now.dev != was.dev) {
					if !send(Event{Time: t, Key: k, Change: Vanished, Path: was.path, Device: was.dev}) {
						return
					}
				}
				if now.path != "" && (now.path != was.path || now.dev != was.dev) {
					if !send(Event{Time: t, Key: k, Change: Appeared, Path: now.path, Device: now.dev}) {
						return
					}
				}
				if now.trouble != nil && text(now.trouble) != text(was.trouble) {
					if !send(Event{Time: t, Key: k, Change: Trouble, Err: now.trouble}) {
						return
					}
				}
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

func (o *Opener) look(m Match) seen {
	path, err := o.Resolve(m)
	switch {
	case err == nil:
		dev, err := filepath.EvalSymlinks(path)
		if err != nil {
			return seen{} // vanished between the two looks
		}
		return seen{path: path, dev: dev}
	case errors.Is(err, ErrNoPort):
		return seen{}
	default:
		return seen{trouble: err}
	}
}
