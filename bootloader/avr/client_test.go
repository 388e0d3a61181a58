package avr_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/bootloader/avr"
	"github.com/unbrick/unbrick/sim"
)

// misbehaving is STK500v1 firmware that frames commands correctly (it
// knows each command's length) but answers them in one wrong way, as other
// bootloaders or a confused unit do.
type misbehaving struct {
	answer func(cmd byte) []byte // nil: stay silent
}

var argLen = map[byte]int{avr.CmdGetParameter: 1, avr.CmdSetDevice: 20, avr.CmdSetDeviceExt: 5, avr.CmdLoadAddress: 2, avr.CmdUniversal: 4}

func (f misbehaving) Run(s *sim.Session) {
	for {
		cmd, err := s.ReadByte()
		if err != nil {
			return
		}
		for range argLen[cmd] + 1 { // arguments and the terminator
			if _, err := s.ReadByte(); err != nil {
				return
			}
		}
		if f.answer == nil {
			continue
		}
		if _, err := s.Write(f.answer(cmd)); err != nil {
			return
		}
	}
}

func TestClientProtocolErrors(t *testing.T) {
	tests := []struct {
		name   string
		answer func(cmd byte) []byte
		want   error // a sentinel, or nil for a timeout
	}{
		{"no sync", func(byte) []byte { return []byte{avr.RespNoSync} }, avr.ErrNoSync},
		{"failed", func(byte) []byte { return []byte{avr.RespInSync, 0x08, avr.RespFailed} }, avr.ErrFailed},
		{"wrong terminator", func(byte) []byte { return []byte{avr.RespInSync, 0x08, 0x20} }, avr.ErrBadTerminator},
		{"garbage", func(byte) []byte { return []byte{'?', '\r', '\n'} }, avr.ErrNotInSync},
		{"silent", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				host, dev := sim.Pipe()
				line := sim.NewLine(sim.LineConfig{Fast: true})
				line.Attach(dev)
				d := sim.NewDevice("stk", misbehaving{tt.answer}, line)
				defer d.Close()
				d.SetPower(true)
				c := avr.New(host, avr.Options{Timeout: 200 * time.Millisecond})
				start := time.Now()
				_, err := c.GetParameter(context.Background(), avr.ParamSWMajor)
				if tt.want == nil {
					var te *bootloader.TimeoutError
					if !errors.As(err, &te) || !errors.Is(err, os.ErrDeadlineExceeded) {
						t.Fatalf("GetParameter() error = %v, want a *bootloader.TimeoutError", err)
					}
					if waited := time.Since(start); waited < 200*time.Millisecond || waited > time.Second {
						t.Errorf("GetParameter() gave up after %v, want about 200ms", waited)
					}
					return
				}
				var pe *avr.ProtocolError
				if !errors.As(err, &pe) || !errors.Is(err, tt.want) {
					t.Fatalf("GetParameter() error = %v, want a *ProtocolError wrapping %v", err, tt.want)
				}
				if pe.Cmd != avr.CmdGetParameter {
					t.Errorf("ProtocolError.Cmd = %#x, want GET_PARAMETER", pe.Cmd)
				}
			})
		})
	}
}

func TestClientRefusesWithoutPart(t *testing.T) {
	host, _ := sim.Pipe()
	c := avr.New(host, avr.Options{})
	ctx := context.Background()
	if err := c.WritePages(ctx, 0, make([]byte, 128), nil); err == nil || !strings.Contains(err.Error(), "Identify") {
		t.Errorf("WritePages before Identify = %v, want an error naming Identify", err)
	}
	if err := c.LoadAddress(ctx, 0x10000); err == nil {
		t.Error("LoadAddress(0x10000) on an unidentified part succeeded, want an error")
	}
	p, _ := avr.LookupName("m328p")
	c.SetPart(p)
	tests := []struct {
		name string
		addr uint32
		n    int
		want string
	}{
		{"unaligned", 0x40, 128, "not the start"},
		{"into optiboot", 0x7D80, 256, "optiboot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.WritePages(ctx, tt.addr, make([]byte, tt.n), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("WritePages(0x%X, %d bytes) = %v, want an error containing %q", tt.addr, tt.n, err, tt.want)
			}
		})
	}
}

func TestIdentifyUnknownPart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host, dev := sim.Pipe()
		line := sim.NewLine(sim.LineConfig{Fast: true})
		line.Attach(dev)
		// A unit whose signature reads as zeros, as when no chip answers the
		// programmer behind the bootloader.
		d := sim.NewDevice("stk", misbehaving{func(cmd byte) []byte {
			switch cmd {
			case avr.CmdGetParameter:
				return []byte{avr.RespInSync, 0x04, avr.RespOK}
			case avr.CmdReadSign:
				return []byte{avr.RespInSync, 0, 0, 0, avr.RespOK}
			}
			return []byte{avr.RespInSync, avr.RespOK}
		}}, line)
		defer d.Close()
		d.SetPower(true)
		c := avr.New(host, avr.Options{})
		_, err := c.Identify(context.Background())
		var ue *avr.UnknownPartError
		if !errors.As(err, &ue) || ue.Signature != [3]byte{} {
			t.Fatalf("Identify() = %v, want an *UnknownPartError for 00 00 00", err)
		}
		if _, ok := c.Part(); ok {
			t.Error("Part() reports a part after a failed Identify")
		}
	})
}

// TestSyncNoReset: a Reset hook that could not reset the unit (ErrNoReset)
// is no failure, and Sync does not wait ResetDelay for a start-up that did
// not happen; any other hook error fails Sync.
func TestSyncNoReset(t *testing.T) {
	insync := misbehaving{func(byte) []byte { return []byte{avr.RespInSync, avr.RespOK} }}
	tests := []struct {
		name    string
		hook    error
		wantErr bool
		maxWait time.Duration
	}{
		{"no way to reset", fmt.Errorf("%w: set DTR: no modem lines", bootloader.ErrNoReset), false, time.Second},
		{"reset", nil, false, 2 * time.Hour},
		{"hook failed", errors.New("gpio: line busy"), true, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				host, dev := sim.Pipe()
				line := sim.NewLine(sim.LineConfig{Fast: true})
				line.Attach(dev)
				d := sim.NewDevice("stk", insync, line)
				defer d.Close()
				d.SetPower(true)
				c := avr.New(host, avr.Options{ResetDelay: time.Hour, Reset: func(context.Context) error { return tt.hook }})
				start := time.Now()
				err := c.Sync(context.Background())
				if (err != nil) != tt.wantErr {
					t.Fatalf("Sync() with a hook returning %v = %v, want error %v", tt.hook, err, tt.wantErr)
				}
				waited := time.Since(start)
				if waited > tt.maxWait || (tt.hook == nil && waited < time.Hour) {
					t.Errorf("Sync() with a hook returning %v took %v, want ResetDelay (1h) only after a reset", tt.hook, waited)
				}
			})
		})
	}
}
