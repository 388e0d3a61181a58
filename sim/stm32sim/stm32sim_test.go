package stm32sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/bootloader/stm32"
	"github.com/unbrick/unbrick/sim"
	"github.com/unbrick/unbrick/sim/simtest"
)

var ctx = context.Background()

// unit is a simulated unit on an in-memory link, for tests under synctest.
type unit struct {
	t    *testing.T
	m    *Model
	host *sim.PipeHost
	line *sim.Line
	dev  *sim.Device
}

var fast = sim.LineConfig{Fast: true}

func newUnit(t *testing.T, part string, o Options, cfg sim.LineConfig) *unit {
	t.Helper()
	m, err := New(part, o)
	if err != nil {
		t.Fatal(err)
	}
	host, pd := sim.Pipe()
	line := sim.NewLine(cfg)
	line.Attach(pd)
	d := sim.NewDevice(part, m, line)
	t.Cleanup(d.Close)
	return &unit{t: t, m: m, host: host, line: line, dev: d}
}

// enter is the unit's entry sequence: strap BOOT0, pulse reset.
func (u *unit) enter(context.Context) error {
	u.dev.SetBoot(true)
	u.dev.SetReset(true)
	u.dev.SetReset(false)
	return nil
}

// boot powers the unit with the strap asserted and returns a synced client.
func (u *unit) boot(o stm32.Options) *stm32.Client {
	u.t.Helper()
	u.dev.SetBoot(true)
	u.dev.SetPower(true)
	c := u.client(o)
	if err := c.Sync(ctx); err != nil {
		u.t.Fatalf("Sync() = %v", err)
	}
	return c
}

func (u *unit) client(o stm32.Options) *stm32.Client {
	if o.Reset == nil {
		o.Reset = u.enter
	}
	return stm32.New(u.host, o)
}

// readUntil reads from the host side until the text contains want.
func (u *unit) readUntil(want string, within time.Duration) string {
	u.t.Helper()
	return simtest.ReadUntil(u.t, u.host, want, within)
}

// exchange writes raw bytes and returns what comes back within d.
func (u *unit) exchange(out []byte, d time.Duration) []byte {
	u.host.Write(out)
	var got []byte
	buf := make([]byte, 512)
	u.host.SetReadTimeout(d)
	for {
		n, _ := u.host.Read(buf)
		if n == 0 {
			return got
		}
		got = append(got, buf[:n]...)
	}
}

func appImage(t *testing.T, part, version string, size int) []byte {
	t.Helper()
	img, err := AppImage(part, version, "sensor-b", size)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

var parts = []struct {
	name    string
	pid     uint16
	version byte
	erase   byte
	flash   int
	idNACKs int
}{
	{"stm32f103", 0x410, 0x22, stm32.CmdErase, 128 << 10, 0},
	{"stm32f407", 0x413, 0x31, stm32.CmdExtendedErase, 1 << 20, 1},
}

func TestIdentify(t *testing.T) {
	for _, p := range parts {
		t.Run(p.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, p.name, Options{Seed: 42}, fast)
				c := u.boot(stm32.Options{})
				info, err := c.Identify(ctx)
				if err != nil {
					t.Fatalf("Identify() = %v", err)
				}
				if info.PID != p.pid || info.Part.PID != p.pid || info.BootloaderVersion != p.version {
					t.Errorf("Identify() = PID %#x part %v version %#x, want PID %#x version %#x", info.PID, info.Part, info.BootloaderVersion, p.pid, p.version)
				}
				if info.UID != u.m.UID() || info.Serial() != u.m.Serial() || len(info.Serial()) != 24 {
					t.Errorf("Identify().UID = %s, want %s", info.Serial(), u.m.Serial())
				}
				if info.FlashSize != p.flash || int(info.Part.FlashSize()) != p.flash {
					t.Errorf("Identify().FlashSize = %d (part %d), want %d", info.FlashSize, info.Part.FlashSize(), p.flash)
				}
				if !c.Offers(p.erase) || c.Offers(stm32.CmdErase^stm32.CmdExtendedErase^p.erase) {
					t.Errorf("commands % X: want %s and not the other erase", info.Commands, stm32.CmdName(p.erase))
				}
				v, o1, o2, err := c.GetVersion(ctx)
				if err != nil || v != p.version || o1 != 0 || o2 != 0 {
					t.Errorf("GetVersion() = %#x %#x %#x, %v; want %#x 0 0", v, o1, o2, err, p.version)
				}
				// Every unit has its own ID.
				other, _ := New(p.name, Options{Seed: 43})
				if other.UID() == u.m.UID() {
					t.Errorf("seeds 42 and 43 gave the same UID %s", u.m.Serial())
				}
				// The F407's ROM refuses the exact READ of the unique ID;
				// the client's 256-byte window gets it (TestIDReads).
				if st := u.m.Stats(); st.Syncs != 1 || st.NACKs != p.idNACKs {
					t.Errorf("Stats() = %+v, want one sync and %d NACK", st, p.idNACKs)
				}
			})
		})
	}
}

func TestBoot(t *testing.T) {
	good := appImage(t, "stm32f103", "1.0", 4096)
	badSP := bytes.Clone(good)
	badSP[3] = 0x30 // SP 0x30005000
	noThumb := bytes.Clone(good)
	noThumb[4] &^= 1
	badCRC := bytes.Clone(good)
	badCRC[3000] ^= 0x40
	other, err := AppImage("stm32f103", "1.0", "sensor-c", 4096)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		image []byte
		want  string
	}{
		{"good", good, "sensor-b firmware v1.0 (id "},
		{"erased", nil, "stm32f103: boot failed: flash erased: no vector table at 0x08000000"},
		{"stack pointer", badSP, "bad vector table at 0x08000000: initial SP 0x30005000 is outside SRAM"},
		{"thumb bit", noThumb, "lacks the Thumb bit"},
		{"checksum", badCRC, "bad image checksum"},
		{"other board", other, `FATAL: image built for board "sensor-c", this is "sensor-b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, "stm32f103", Options{Board: "sensor-b", Image: tt.image, Seed: 1}, fast)
				u.dev.SetPower(true)
				if tt.name == "good" {
					// Read until the whole banner with the serial and the
					// prompt after it: the text asserted must have arrived.
					u.readUntil(tt.want+u.m.Serial()+")\r\nready", time.Second)
					return
				}
				u.readUntil(tt.want, time.Second)
				// A bricked unit resets and fails again, about once a second.
				u.readUntil(tt.want, 2*time.Second)
				if n := len(u.dev.Boots()); n < 2 {
					t.Errorf("%d boots, want a boot loop", n)
				}
			})
		})
	}
}

func TestWriteVerifyGo(t *testing.T) {
	for _, p := range parts {
		t.Run(p.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, p.name, Options{Board: "sensor-b", Image: appImage(t, p.name, "1.0", 8192)}, fast)
				c := u.boot(stm32.Options{})
				info, err := c.Identify(ctx)
				if err != nil {
					t.Fatal(err)
				}
				img := appImage(t, p.name, "2.0", 70*1024+3) // across F4 sectors 0-4, last block not a multiple of 4
				base := info.Part.FlashBase
				if err := c.EraseRegion(ctx, info.Part, base, uint32(len(img))); err != nil {
					t.Fatalf("EraseRegion() = %v", err)
				}
				var done, total int64
				if err := c.WriteMemory(ctx, base, img, func(d, t int64) { done, total = d, t }); err != nil {
					t.Fatalf("WriteMemory() = %v", err)
				}
				if done != int64(len(img)) || total != int64(len(img)) {
					t.Errorf("last progress %d/%d, want %d/%d", done, total, len(img), len(img))
				}
				if err := c.Verify(ctx, base, img, nil); err != nil {
					t.Fatalf("Verify() = %v", err)
				}
				got, err := c.ReadMemory(ctx, base, len(img)+1, nil)
				if err != nil || !bytes.Equal(got[:len(img)], img) || got[len(img)] != 0xFF {
					t.Fatalf("ReadMemory() = %d bytes, %v; want the image and one 0xFF of padding", len(got), err)
				}
				if snap := u.m.Flash().Snapshot(); !bytes.Equal(snap[:len(img)], img) {
					t.Fatal("flash does not hold the image")
				}
				if st := u.m.Stats(); st.DirtyWrites != 0 || st.BlocksWritten != (len(img)+255)/256 {
					t.Errorf("Stats() = %+v, want %d clean blocks", st, (len(img)+255)/256)
				}
				if err := c.Go(ctx, base); err != nil {
					t.Fatalf("Go() = %v", err)
				}
				u.readUntil("sensor-b firmware v2.0 (id "+u.m.Serial()+")", time.Second)
			})
		})
	}
}

func TestEraseSemantics(t *testing.T) {
	tests := []struct {
		part        string
		start, size uint32
		units       []int
	}{
		{"stm32f103", 0x08000000, 1, []int{0}},
		{"stm32f103", 0x080003FF, 2, []int{0, 1}},
		{"stm32f103", 0x08001000, 0x2000, []int{4, 5, 6, 7, 8, 9, 10, 11}},
		{"stm32f407", 0x08000000, 0x10001, []int{0, 1, 2, 3, 4}},
		{"stm32f407", 0x08020000, 0x20001, []int{5, 6}},
	}
	for _, tt := range tests {
		synctest.Test(t, func(t *testing.T) {
			u := newUnit(t, tt.part, Options{}, fast)
			full := bytes.Repeat([]byte{0x00}, u.m.Flash().Size())
			u.m.Flash().Load(0x08000000, full)
			c := u.boot(stm32.Options{})
			info, err := c.Identify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.EraseRegion(ctx, info.Part, tt.start, tt.size); err != nil {
				t.Fatalf("%s: EraseRegion(%#x, %#x) = %v", tt.part, tt.start, tt.size, err)
			}
			erases, _, _ := u.m.Flash().Stats()
			var got []int
			for i, n := range erases {
				if n > 0 {
					got = append(got, i)
				}
			}
			if !equalInts(got, tt.units) {
				t.Errorf("%s: EraseRegion(%#x, %#x) erased units %v, want %v", tt.part, tt.start, tt.size, got, tt.units)
			}
			// Outside the erased units, the zeros stay.
			last, _ := info.Part.Unit(tt.units[len(tt.units)-1])
			if b, _ := u.m.Flash().Read(uint32(last.End()), 4); !bytes.Equal(b, []byte{0, 0, 0, 0}) {
				t.Errorf("%s: bytes after the region = % X, want zeros", tt.part, b)
			}
			if err := c.MassErase(ctx); err != nil {
				t.Fatalf("%s: MassErase() = %v", tt.part, err)
			}
			if snap := u.m.Flash().Snapshot(); !bytes.Equal(snap, bytes.Repeat([]byte{0xFF}, len(snap))) {
				t.Errorf("%s: flash not erased after MassErase", tt.part)
			}
			if _, err := info.Part.UnitsIn(0x08000000, uint32(len(full))+1); err == nil {
				t.Errorf("%s: UnitsIn past the end of flash succeeded", tt.part)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestEraseTakesModelledTime runs on a paced line (under synctest's clock):
// erasing F4 sectors 0 to 5 takes 4 x 250 ms + 550 ms + 1 s, and the
// client waits for it with a short ACK timeout.
func TestEraseTakesModelledTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "stm32f407", Options{}, LineConfig())
		c := u.boot(stm32.Options{Timeout: 100 * time.Millisecond})
		info, err := c.Identify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := c.EraseRegion(ctx, info.Part, 0x08000000, 256<<10); err != nil {
			t.Fatalf("EraseRegion(256 KiB) = %v", err)
		}
		took := time.Since(start)
		want := 4*250*time.Millisecond + 550*time.Millisecond + time.Second
		if took < want || took > want+20*time.Millisecond {
			t.Errorf("EraseRegion(256 KiB) took %v, want %v plus wire time", took, want)
		}
	})
}

func TestWriteWithoutEraseIsCaughtByVerify(t *testing.T) {
	for _, p := range parts {
		synctest.Test(t, func(t *testing.T) {
			u := newUnit(t, p.name, Options{Image: appImage(t, p.name, "1.0", 4096)}, fast)
			c := u.boot(stm32.Options{})
			img := appImage(t, p.name, "2.0", 4096)
			// The ROM answers ACK to every block, as silicon does.
			if err := c.WriteMemory(ctx, 0x08000000, img, nil); err != nil {
				t.Fatalf("%s: WriteMemory() over old data = %v, want nil (the ROM acknowledges)", p.name, err)
			}
			err := c.Verify(ctx, 0x08000000, img, nil)
			var ve *stm32.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("%s: Verify() = %v, want a *VerifyError", p.name, err)
			}
			old := appImage(t, p.name, "1.0", 4096)
			first := -1
			for i := range img {
				if img[i]&old[i] != img[i] {
					first = i
					break
				}
			}
			if ve.Addr != 0x08000000+uint32(first) || ve.Want != img[first] || ve.Got != img[first]&old[first] {
				t.Errorf("%s: VerifyError = %+v, want first corrupted byte at %#x: want %#x got %#x", p.name, ve, 0x08000000+first, img[first], img[first]&old[first])
			}
			if !strings.Contains(err.Error(), "not erased") {
				t.Errorf("%s: error %q does not say the flash was not erased", p.name, err)
			}
			if st := u.m.Stats(); st.DirtyWrites == 0 {
				t.Errorf("%s: Stats() = %+v, want dirty writes counted", p.name, st)
			}
		})
	}
}

func TestNACKs(t *testing.T) {
	addr := func(a uint32) []byte { return stm32.AppendAddress(nil, a) }
	badSum := func(a uint32) []byte { b := addr(a); b[4] ^= 1; return b }
	cat := func(b ...[]byte) []byte { return bytes.Join(b, nil) }
	const A, N = stm32.ACK, stm32.NACK
	tests := []struct {
		name string
		part string
		send []byte
		want []byte
	}{
		{"wrong complement", "stm32f103", []byte{0x00, 0x00}, []byte{N}},
		{"repeated sync", "stm32f103", []byte{0x7F, 0x7F}, []byte{N}},
		{"extended erase on the F1", "stm32f103", []byte{0x44, 0xBB}, []byte{N}},
		{"erase on the F4", "stm32f407", []byte{0x43, 0xBC}, []byte{N}},
		{"unknown command", "stm32f407", []byte{0xA1, 0x5E}, []byte{N}},
		{"read: bad address checksum", "stm32f103", cat([]byte{0x11, 0xEE}, badSum(0x08000000)), []byte{A, N}},
		{"read: unmapped address", "stm32f103", cat([]byte{0x11, 0xEE}, addr(0x40000000)), []byte{A, N}},
		{"read: past the end of flash", "stm32f103", cat([]byte{0x11, 0xEE}, addr(0x0801FF80), []byte{0xFF, 0x00}), []byte{A, A, N}},
		{"read: bad length complement", "stm32f103", cat([]byte{0x11, 0xEE}, addr(0x08000000), []byte{0x0F, 0xF1}), []byte{A, A, N}},
		{"write: unaligned", "stm32f103", cat([]byte{0x31, 0xCE}, addr(0x08000002)), []byte{A, N}},
		{"write: system memory", "stm32f407", cat([]byte{0x31, 0xCE}, addr(0x1FFF0000)), []byte{A, N}},
		{"write: bootloader RAM", "stm32f407", cat([]byte{0x31, 0xCE}, addr(0x20000100)), []byte{A, N}},
		{"write: bad data checksum", "stm32f103", cat([]byte{0x31, 0xCE}, addr(0x08000000), []byte{3, 1, 2, 3, 4, 0}), []byte{A, A, N}},
		{"write: length not a multiple of 4", "stm32f103", cat([]byte{0x31, 0xCE}, addr(0x08000000), []byte{2, 1, 2, 3, 2 ^ 1 ^ 2 ^ 3}), []byte{A, A, N}},
		{"erase: bad checksum", "stm32f103", []byte{0x43, 0xBC, 0x00, 0x05, 0x00}, []byte{A, N}},
		{"erase: page out of range", "stm32f103", []byte{0x43, 0xBC, 0x00, 0x80, 0x80}, []byte{A, N}},
		{"extended erase: bank erase on a single bank", "stm32f407", []byte{0x44, 0xBB, 0xFF, 0xFE, 0x01}, []byte{A, N}},
		{"extended erase: sector out of range", "stm32f407", []byte{0x44, 0xBB, 0x00, 0x00, 0x00, 0x0C, 0x0C}, []byte{A, N}},
		{"go: unmapped", "stm32f407", cat([]byte{0x21, 0xDE}, addr(0x60000000)), []byte{A, N}},
		{"go: system memory", "stm32f103", cat([]byte{0x21, 0xDE}, addr(0x1FFFF000)), []byte{A, N}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, tt.part, Options{}, fast)
				u.boot(stm32.Options{})
				if got := u.exchange(tt.send, 100*time.Millisecond); !bytes.Equal(got, tt.want) {
					t.Fatalf("sent % X, got % X, want % X", tt.send, got, tt.want)
				}
				// The ROM is back in its command loop.
				if got := u.exchange([]byte{0x02, 0xFD}, 100*time.Millisecond); !bytes.Equal(got, append([]byte{A}, stm32.EncodeID(u.m.v.pid)...)) {
					t.Fatalf("GET_ID after the NACK = % X", got)
				}
				if snap := u.m.Flash().Snapshot(); !bytes.Equal(snap, bytes.Repeat([]byte{0xFF}, len(snap))) {
					t.Error("a refused command changed the flash")
				}
			})
		})
	}
}

func TestClientErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "stm32f103", Options{}, fast)
		c := u.boot(stm32.Options{})
		_, err := c.Read(ctx, 0x40000000, 4)
		var ne *stm32.NACKError
		if !errors.As(err, &ne) || ne.Cmd != stm32.CmdRead || ne.Stage != stm32.StageAddress || ne.Addr != 0x40000000 {
			t.Fatalf("Read(0x40000000) = %v, want a NACK at the address stage", err)
		}
		if !strings.Contains(err.Error(), "READ at 0x40000000") || errors.Is(err, stm32.ErrReadProtected) {
			t.Errorf("Read(0x40000000) error %q: want it to name READ at 0x40000000, not read protection", err)
		}
		err = c.Write(ctx, 0x1FFFF000, []byte{1, 2, 3, 4})
		if !errors.As(err, &ne) || ne.Stage != stm32.StageAddress || !strings.Contains(err.Error(), "WRITE at 0x1FFFF000") {
			t.Errorf("Write(system memory) = %v, want a NACK naming WRITE at 0x1FFFF000", err)
		}
		if err := c.Write(ctx, 0x08000001, []byte{1}); err == nil {
			t.Error("Write() at an unaligned address succeeded")
		}
		if _, err := c.Read(ctx, 0x08000000, 257); err == nil {
			t.Error("Read() of 257 bytes succeeded")
		}
		// A write to RAM, and padding to a multiple of 4.
		if err := c.Write(ctx, 0x20001000, []byte{1, 2, 3, 4, 5}); err != nil {
			t.Fatalf("Write(RAM) = %v", err)
		}
		if got, _ := c.Read(ctx, 0x20001000, 8); !bytes.Equal(got, []byte{1, 2, 3, 4, 5, 0xFF, 0xFF, 0xFF}) {
			t.Errorf("RAM after a 5-byte write = % X, want the bytes and three 0xFF", got)
		}
		// Erases on a unit whose part is unknown to the client still work.
		if err := c.Erase(ctx, []int{127}); err != nil {
			t.Errorf("Erase([127]) = %v", err)
		}
		if err := c.Erase(ctx, []int{128}); !errors.As(err, &ne) || ne.Stage != stm32.StagePages {
			t.Errorf("Erase([128]) = %v, want a NACK at the pages stage", err)
		}
	})
}

func TestReadoutProtection(t *testing.T) {
	for _, p := range parts {
		t.Run(p.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				img := appImage(t, p.name, "1.0", 4096)
				u := newUnit(t, p.name, Options{Board: "sensor-b", Image: img, ReadoutProtect: true}, fast)
				c := u.boot(stm32.Options{})
				info, err := c.Identify(ctx)
				if !errors.Is(err, stm32.ErrReadProtected) {
					t.Fatalf("Identify() of a protected unit = %v, want ErrReadProtected", err)
				}
				if info.PID != p.pid || info.BootloaderVersion != p.version || !strings.Contains(err.Error(), "unique ID") {
					t.Errorf("Identify() = %+v, %v; want the PID and version, and an error about the unique ID", info, err)
				}
				_, err = c.Read(ctx, 0x08000000, 16)
				var ne *stm32.NACKError
				if !errors.As(err, &ne) || ne.Stage != stm32.StageCommand || !strings.Contains(err.Error(), "read-protected") {
					t.Fatalf("Read() under RDP = %v, want a NACK of the command that names read protection", err)
				}
				for name, f := range map[string]func() error{
					"Write":     func() error { return c.Write(ctx, 0x08000000, []byte{0, 0, 0, 0}) },
					"Erase":     func() error { return c.Erase(ctx, []int{0}) },
					"MassErase": func() error { return c.MassErase(ctx) },
					"Go":        func() error { return c.Go(ctx, 0x08000000) },
				} {
					if err := f(); !errors.Is(err, stm32.ErrReadProtected) {
						t.Errorf("%s() under RDP = %v, want ErrReadProtected", name, err)
					}
				}
				if err := c.ReadoutUnprotect(ctx); err != nil {
					t.Fatalf("ReadoutUnprotect() = %v", err)
				}
				if u.m.ReadoutProtected() {
					t.Error("RDP still set after READOUT_UNPROTECT")
				}
				if snap := u.m.Flash().Snapshot(); !bytes.Equal(snap, bytes.Repeat([]byte{0xFF}, len(snap))) {
					t.Error("flash not mass-erased by READOUT_UNPROTECT")
				}
				info, err = c.Identify(ctx)
				if err != nil || info.UID != u.m.UID() {
					t.Fatalf("Identify() after unprotect = %v, %v; want UID %s", info.Serial(), err, u.m.Serial())
				}
				// The way back: protect again, the unit resets, READ is refused.
				if err := c.ReadoutProtect(ctx); err != nil {
					t.Fatalf("ReadoutProtect() = %v", err)
				}
				if _, err := c.Read(ctx, 0x08000000, 4); !errors.Is(err, stm32.ErrReadProtected) {
					t.Errorf("Read() after ReadoutProtect = %v, want ErrReadProtected", err)
				}
				if got := causes(u.dev.Boots()); len(got) != 3 || got[1] != sim.Software || got[2] != sim.Software {
					t.Errorf("boots = %v, want power-on and two software resets", got)
				}
			})
		})
	}
}

func causes(bs []sim.Boot) []sim.Cause {
	var c []sim.Cause
	for _, b := range bs {
		c = append(c, b.Cause)
	}
	return c
}

func TestWriteProtection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "stm32f407", Options{}, fast)
		c := u.boot(stm32.Options{})
		info, err := c.Identify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.WriteProtect(ctx, []int{1}); err != nil {
			t.Fatalf("WriteProtect([1]) = %v", err)
		}
		if got := u.m.WriteProtected(); !equalInts(got, []int{1}) {
			t.Fatalf("WriteProtected() = %v, want [1]", got)
		}
		opt, err := c.Read(ctx, info.Part.OptionBytes.Start, 16)
		if err != nil || opt[1] != 0xAA || opt[8]&2 != 0 {
			t.Errorf("option bytes = % X, %v; want RDP 0xAA and nWRP bit 1 clear", opt, err)
		}
		var ne *stm32.NACKError
		if err := c.EraseRegion(ctx, info.Part, 0x08004000, 4); !errors.As(err, &ne) {
			t.Errorf("erase of a protected sector = %v, want a NACK", err)
		}
		if err := c.Write(ctx, 0x08004000, []byte{0, 0, 0, 0}); !errors.As(err, &ne) || ne.Stage != stm32.StageData {
			t.Errorf("write into a protected sector = %v, want a NACK after the data", err)
		}
		if err := c.MassErase(ctx); !errors.As(err, &ne) {
			t.Errorf("mass erase with a protected sector = %v, want a NACK", err)
		}
		if err := c.WriteUnprotect(ctx); err != nil {
			t.Fatalf("WriteUnprotect() = %v", err)
		}
		if err := c.EraseRegion(ctx, info.Part, 0x08004000, 4); err != nil {
			t.Errorf("erase after WriteUnprotect = %v", err)
		}
	})
}

func TestHungUnitTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "stm32f103", Options{}, fast)
		const timeout = 300 * time.Millisecond
		c := u.boot(stm32.Options{Timeout: timeout})
		info, err := c.Identify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.EraseRegion(ctx, info.Part, 0x08000000, 8192); err != nil {
			t.Fatal(err)
		}
		u.m.SetFaults(Faults{HangAfter: 1000})
		img := appImage(t, "stm32f103", "2.0", 8192)
		start := time.Now()
		err = c.WriteMemory(ctx, 0x08000000, img, nil)
		waited := time.Since(start)
		var te *bootloader.TimeoutError
		if !errors.As(err, &te) || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("WriteMemory() to a hung unit = %v, want a *bootloader.TimeoutError", err)
		}
		if !strings.Contains(te.Op, "WRITE at 0x08000") {
			t.Errorf("timeout %q does not name the WRITE and its address", te.Op)
		}
		// 1000 bytes are three blocks and most of a fourth: the wait is one
		// timeout plus wire time, not more.
		if waited > timeout+50*time.Millisecond || waited < timeout {
			t.Errorf("WriteMemory() gave up after %v, want about %v", waited, timeout)
		}
		if st := u.m.Stats(); st.Hangs != 1 {
			t.Errorf("Stats() = %+v, want one hang", st)
		}
		// A reset brings it back: Sync's second attempt calls the hook.
		if err := c.Sync(ctx); err != nil {
			t.Fatalf("Sync() after the hang = %v", err)
		}
		if err := c.EraseRegion(ctx, info.Part, 0x08000000, 8192); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteMemory(ctx, 0x08000000, img, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Verify(ctx, 0x08000000, img, nil); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDetachMidWriteFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "stm32f407", Options{}, fast)
		c := u.boot(stm32.Options{})
		img := appImage(t, "stm32f407", "2.0", 16<<10)
		err := c.WriteMemory(ctx, 0x08000000, img, func(done, _ int64) {
			if done == 4*256 {
				u.line.Detach() // the cable is pulled
			}
		})
		if err == nil {
			t.Fatal("WriteMemory() through a detached line succeeded")
		}
		if !strings.Contains(err.Error(), "port closed") {
			t.Errorf("WriteMemory() = %v, want it to say the port closed", err)
		}
		if err := c.Verify(ctx, 0x08000000, img, nil); err == nil {
			t.Error("Verify() through a detached line succeeded")
		}
	})
}

func TestRepeatedSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "stm32f103", Options{}, fast)
		u.boot(stm32.Options{})
		// A second session: the ROM is synced and takes 0x7F as a command.
		var logs []string
		c := stm32.New(u.host, stm32.Options{Log: func(m string) { logs = append(logs, m) }})
		if err := c.Sync(ctx); err != nil {
			t.Fatalf("second Sync() = %v", err)
		}
		if !strings.Contains(strings.Join(logs, "\n"), "already synced: the pair 7F 7F was answered NACK") {
			t.Errorf("logs %q do not report the NACKed 7F 7F", logs)
		}
		if _, err := c.Identify(ctx); err != nil {
			t.Fatalf("Identify() after the repeated sync = %v", err)
		}
		// One stray byte pending: a single 0x7F draws the NACK at once.
		u.host.Write([]byte{0x00})
		logs = nil
		if err := c.Sync(ctx); err != nil {
			t.Fatalf("Sync() with a byte pending = %v", err)
		}
		if !strings.Contains(strings.Join(logs, "\n"), "0x7F was answered NACK") {
			t.Errorf("logs %q do not report the NACK", logs)
		}
		if st := u.m.Stats(); st.Syncs != 1 || st.NACKs != 2 {
			t.Errorf("Stats() = %+v, want one autobaud sync and two NACKs", st)
		}
	})
}

// noisy is a port that puts garbage in front of the first answer after the
// sync byte, as a line does while a unit resets.
type noisy struct {
	*sim.PipeHost
	mu      sync.Mutex
	garbage []byte
	armed   bool
}

func (n *noisy) Write(b []byte) (int, error) {
	n.mu.Lock()
	if len(b) == 1 && b[0] == stm32.SyncByte {
		n.armed = true
	}
	n.mu.Unlock()
	return n.PipeHost.Write(b)
}

func (n *noisy) Read(b []byte) (int, error) {
	n.mu.Lock()
	if n.armed && len(n.garbage) > 0 {
		k := copy(b, n.garbage)
		n.garbage = n.garbage[k:]
		n.mu.Unlock()
		return k, nil
	}
	n.mu.Unlock()
	return n.PipeHost.Read(b)
}

func TestSyncIsNotFooled(t *testing.T) {
	t.Run("garbage before the ACK", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := newUnit(t, "stm32f407", Options{}, fast)
			u.dev.SetBoot(true)
			u.dev.SetPower(true)
			var logs []string
			c := stm32.New(&noisy{PipeHost: u.host, garbage: []byte{0x00, 0xF8, 0x79, 0x80}}, stm32.Options{Log: func(m string) { logs = append(logs, m) }})
			if err := c.Sync(ctx); err != nil {
				t.Fatalf("Sync() = %v", err)
			}
			if !strings.Contains(strings.Join(logs, "\n"), "synced after 4 bytes of garbage") {
				t.Errorf("logs = %q", logs)
			}
			if _, err := c.Identify(ctx); err != nil {
				t.Fatalf("Identify() = %v", err)
			}
		})
	})
	t.Run("an application printing 'ready'", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := newUnit(t, "stm32f103", Options{Board: "sensor-b", Image: appImage(t, "stm32f103", "1.0", 4096)}, fast)
			u.dev.SetPower(true) // no strap: the application runs
			u.readUntil("ready", time.Second)
			// Whoever types at the application sees its prompt come back;
			// the client must not take the 'y' of "ready" for an ACK.
			u.host.Write([]byte("version\r"))
			c := stm32.New(u.host, stm32.Options{SyncAttempts: 2})
			err := c.Sync(ctx)
			if err == nil {
				t.Fatal("Sync() with the application running succeeded")
			}
			if !strings.Contains(err.Error(), "without a reset hook") {
				t.Errorf("Sync() = %v, want it to point at the missing reset hook", err)
			}
			// With the entry sequence as reset hook, the second attempt gets in.
			resets := 0
			c = stm32.New(u.host, stm32.Options{Reset: func(ctx context.Context) error { resets++; return u.enter(ctx) }})
			if err := c.Sync(ctx); err != nil || resets != 1 {
				t.Fatalf("Sync() with a reset hook = %v after %d resets, want success after 1", err, resets)
			}
		})
	})
}

func TestFaults(t *testing.T) {
	t.Run("NACK a write", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := newUnit(t, "stm32f103", Options{}, fast)
			c := u.boot(stm32.Options{})
			u.m.SetFaults(Faults{NACKWrites: 1})
			img := appImage(t, "stm32f103", "2.0", 1024)
			err := c.WriteMemory(ctx, 0x08000000, img, nil)
			var ne *stm32.NACKError
			if !errors.As(err, &ne) || ne.Cmd != stm32.CmdWrite || ne.Stage != stm32.StageData || !strings.Contains(err.Error(), "WRITE at 0x08000000") {
				t.Fatalf("WriteMemory() = %v, want a NACK of WRITE at 0x08000000 after the data", err)
			}
			if err := c.WriteMemory(ctx, 0x08000000, img, nil); err != nil {
				t.Fatalf("second WriteMemory() = %v, want the fault used up", err)
			}
			if err := c.Verify(ctx, 0x08000000, img, nil); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("wrong byte instead of ACK", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := newUnit(t, "stm32f407", Options{}, fast)
			c := u.boot(stm32.Options{})
			u.m.SetFaults(Faults{WrongAck: 0x41})
			_, err := c.Read(ctx, 0x08000000, 16)
			var pe *stm32.ProtocolError
			if !errors.As(err, &pe) || pe.Cmd != stm32.CmdRead || !strings.Contains(err.Error(), "0x41") {
				t.Fatalf("Read() = %v, want a *ProtocolError naming 0x41", err)
			}
			// Out of step with the ROM: a resync (with a reset) recovers.
			if err := c.Sync(ctx); err != nil {
				t.Fatalf("Sync() = %v", err)
			}
			if got, err := c.Read(ctx, 0x08000000, 16); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{0xFF}, 16)) {
				t.Fatalf("Read() after resync = % X, %v", got, err)
			}
		})
	})
}

func TestGoIntoRAM(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "stm32f103", Options{}, fast)
		c := u.boot(stm32.Options{})
		// stm32flash's reset stub: SP, PC, then code that writes
		// SYSRESETREQ to AIRCR.
		stub := []byte{0x00, 0x20, 0x00, 0x20, 0x09, 0x02, 0x00, 0x20,
			0x01, 0x49, 0x02, 0x4A, 0x0A, 0x60, 0xFE, 0xE7,
			0x0C, 0xED, 0x00, 0xE0, 0x04, 0x00, 0xFA, 0x05}
		if err := c.Write(ctx, 0x20000200, stub); err != nil {
			t.Fatalf("Write(stub) = %v", err)
		}
		if err := c.Go(ctx, 0x20000200); err != nil {
			t.Fatalf("Go(RAM) = %v", err)
		}
		if err := c.Sync(ctx); err != nil {
			t.Fatalf("Sync() after the reset stub = %v", err)
		}
		if got := causes(u.dev.Boots()); len(got) != 2 || got[1] != sim.Software {
			t.Errorf("boots = %v, want a software reset", got)
		}
		// SRAM survives a system reset.
		if got, _ := u.m.RAM(0x20000200, len(stub)); !bytes.Equal(got, stub) {
			t.Errorf("RAM after reset = % X", got)
		}
	})
}

func TestNewRejectsUnknownParts(t *testing.T) {
	if _, err := New("stm32f030", Options{}); err == nil || !strings.Contains(err.Error(), "stm32f103") {
		t.Errorf("New(stm32f030) = %v, want an error listing the known parts", err)
	}
	if _, err := AppImage("stm32f103", "1", "b", 100); err == nil {
		t.Error("AppImage() of 100 bytes succeeded")
	}
	if _, err := New("stm32f103", Options{Image: make([]byte, 129<<10)}); err == nil {
		t.Error("New() with an image larger than flash succeeded")
	}
}

// TestParity: the ROM frames 8E1 (AN3155 §2). A host at 8N1 gets its sync
// byte through and the ACK back, since 7F and 79 look the same in both
// framings, and then nothing: GET's 00 FF arrives with parity and framing
// errors. The client says so. A model that ignored the host's parity would
// answer GET.
func TestParity(t *testing.T) {
	for _, tt := range []struct {
		parity string
		ok     bool
	}{{"even", true}, {"none", false}, {"odd", false}} {
		t.Run(tt.parity, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, "stm32f103", Options{Seed: 7}, LineConfig())
				if err := u.host.SetParity(tt.parity); err != nil {
					t.Fatal(err)
				}
				u.dev.SetBoot(true)
				u.dev.SetPower(true)
				c := u.client(stm32.Options{Timeout: 200 * time.Millisecond})
				err := c.Sync(ctx)
				if tt.parity == "odd" {
					// 7F has seven ones: its odd parity bit is 0, where the
					// ROM wants 1. Not even the sync byte passes.
					if err == nil {
						t.Fatal("Sync() at odd parity succeeded")
					}
					return
				}
				if err != nil {
					t.Fatalf("Sync() at parity %s = %v, want the sync byte through", tt.parity, err)
				}
				info, err := c.Identify(ctx)
				if tt.ok {
					if err != nil || info.Serial() != u.m.Serial() {
						t.Fatalf("Identify() at even parity = %v, %v", info, err)
					}
					return
				}
				var te *bootloader.TimeoutError
				if err == nil || !errors.As(err, &te) || !strings.Contains(err.Error(), "even parity (8E1)") {
					t.Fatalf("Identify() at parity %s = %v, want a timeout that names the parity", tt.parity, err)
				}
				if st := u.line.Stats(); st.RxErrors == 0 {
					t.Errorf("line Stats() = %+v, want parity errors", st)
				}
			})
		})
	}
}

// TestAutobaudLocksOnFirstFrame: the ROM times the first frame it sees as
// 0x7F and keeps the rate that gives until the next reset (AN3155 §2). A
// stray 00 before the sync byte leaves it 10% off: no sync without a
// reset, however often the host sends 0x7F; the client's reset hook (the
// entry sequence) brings it back. A ROM that skipped bytes until 0x7F
// would let the first client sync.
func TestAutobaudLocksOnFirstFrame(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "stm32f103", Options{Seed: 8}, LineConfig())
		u.host.SetBaud(115200)
		u.host.SetParity("even")
		u.dev.SetBoot(true)
		u.dev.SetPower(true)
		if err := u.m.WaitBootloader(ctx); err != nil {
			t.Fatal(err)
		}
		u.host.Write([]byte{0x00})
		time.Sleep(10 * time.Millisecond) // fake time: the byte crosses
		if st := u.m.Stats(); st.AutobaudMisses != 1 || st.Syncs != 0 {
			t.Fatalf("after a stray 00: Stats() = %+v, want one autobaud miss", st)
		}
		c := stm32.New(u.host, stm32.Options{SyncAttempts: 3})
		if err := c.Sync(ctx); err == nil {
			t.Fatal("Sync() without a reset succeeded with the ROM at a wrong rate")
		}
		resets := 0
		c = stm32.New(u.host, stm32.Options{Reset: func(ctx context.Context) error { resets++; return u.enter(ctx) }})
		if err := c.Sync(ctx); err != nil || resets != 1 {
			t.Fatalf("Sync() with the entry sequence as reset hook = %v after %d resets, want success after 1", err, resets)
		}
		if _, err := c.Identify(ctx); err != nil {
			t.Fatalf("Identify() after the resync = %v", err)
		}
		if st := u.m.Stats(); st.Syncs != 1 {
			t.Errorf("Stats() = %+v, want one good sync", st)
		}
	})
}

// TestMeasuredRate: only a frame whose edges fall where 0x7F's do gives the
// ROM the host's rate.
func TestMeasuredRate(t *testing.T) {
	for _, tt := range []struct {
		b    byte
		good bool
	}{{0x7F, true}, {0x00, false}, {0xFF, false}, {0x0A, false}} {
		if got := measuredRate(115200, tt.b); (got == 0) != tt.good {
			t.Errorf("measuredRate(115200, %#02x) = %d, want the host's rate: %v", tt.b, got, tt.good)
		}
	}
}

// TestIDReads: each modelled ROM serves READs of its device information as
// its silicon does (AN2606; see the variants), and the client copes: the
// F103 reads the ID in one READ; the F407 refuses a READ that starts at
// the ID and serves the 256-byte window from 0x1FFF7A00; the L476 refuses
// both, and Identify reports no ID from the ROM instead of failing.
func TestIDReads(t *testing.T) {
	for _, tt := range []struct {
		part   string
		nacks  int
		noUID  bool
		reads  []string // the READs the client sent, as logged when refused
		flashK int
	}{
		{"stm32f103", 0, false, nil, 128},
		{"stm32f407", 1, false, []string{"0x1FFF7A10"}, 1024},
		{"stm32l476", 2, true, []string{"0x1FFF7590", "0x1FFF7500"}, 0},
	} {
		t.Run(tt.part, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, tt.part, Options{Seed: 11}, fast)
				var logs []string
				c := u.boot(stm32.Options{Log: func(m string) { logs = append(logs, m) }})
				info, err := c.Identify(ctx)
				if err != nil {
					t.Fatalf("Identify() = %v, want no error", err)
				}
				if info.NoUID != tt.noUID || info.FlashSize != tt.flashK<<10 {
					t.Errorf("Identify() = %v (flash size %d), want NoUID %v and %d KiB", info, info.FlashSize, tt.noUID, tt.flashK)
				}
				if !tt.noUID && info.Serial() != u.m.Serial() {
					t.Errorf("Identify().Serial() = %q, want %q", info.Serial(), u.m.Serial())
				}
				if tt.noUID && (info.Serial() != "" || !strings.Contains(info.NoUIDReason, "refused every READ")) {
					t.Errorf("Identify() = %v, want no serial and the reason", info)
				}
				if st := u.m.Stats(); st.NACKs != tt.nacks {
					t.Errorf("Stats().NACKs = %d, want %d", st.NACKs, tt.nacks)
				}
				for _, r := range tt.reads {
					if !strings.Contains(strings.Join(logs, "\n"), "at "+r+" for the unique ID") {
						t.Errorf("no refused READ at %s in the log:\n%s", r, strings.Join(logs, "\n"))
					}
				}
			})
		})
	}
}

// TestGetChecksum: the ROM's GET_CHECKSUM, where it has one, agrees with
// the client's CRC32, and Verify uses it instead of reading back; a
// mismatch still names the first differing byte.
func TestGetChecksum(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		img := appImage(t, "stm32f103", "1.0", 5001)
		u := newUnit(t, "stm32f103", Options{Checksum: true, Image: img}, fast)
		c := u.boot(stm32.Options{})
		if _, err := c.Identify(ctx); err != nil {
			t.Fatal(err)
		}
		if !c.Offers(stm32.CmdGetChecksum) {
			t.Fatalf("GET lists % X, want GET_CHECKSUM", u.m.Commands())
		}
		got, err := c.Checksum(ctx, 0x08000000, 4096)
		if want := stm32.CRC32(u.m.Flash().Snapshot()[:4096]); err != nil || got != want {
			t.Fatalf("Checksum() = %#x, %v; want %#x", got, err, want)
		}
		before := u.line.Stats().TxBytes
		if err := c.Verify(ctx, 0x08000000, img, nil); err != nil {
			t.Fatalf("Verify() = %v", err)
		}
		if sent := u.line.Stats().TxBytes - before; sent > 64 {
			t.Errorf("Verify() with GET_CHECKSUM had the unit send %d bytes, want no read-back", sent)
		}
		bad := bytes.Clone(img)
		bad[3333] ^= 1
		var ve *stm32.VerifyError
		if err := c.Verify(ctx, 0x08000000, bad, nil); !errors.As(err, &ve) || ve.Addr != 0x08000000+3333 {
			t.Fatalf("Verify(changed image) = %v, want a VerifyError at 0x%08X", err, 0x08000000+3333)
		}
		if _, err := c.Checksum(ctx, 0x08000002, 8); err == nil {
			t.Error("Checksum() at an unaligned address succeeded")
		}
	})
}

// TestNoMassErase: a ROM without a mass erase (the L0 and L1, stm32flash's
// F_NO_ME) NACKs the code; MassErase then erases page by page.
func TestNoMassErase(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "stm32f103", Options{NoMassErase: true, Image: appImage(t, "stm32f103", "1.0", 4096)}, fast)
		var logs []string
		c := u.boot(stm32.Options{Log: func(m string) { logs = append(logs, m) }})
		if _, err := c.Identify(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.MassErase(ctx); err != nil {
			t.Fatalf("MassErase() = %v", err)
		}
		st := u.m.Stats()
		if st.MassErases != 0 || st.UnitsErased != u.m.Part().Units() || st.NACKs != 1 {
			t.Errorf("Stats() = %+v, want the mass erase refused and every page erased", st)
		}
		for _, b := range u.m.Flash().Snapshot() {
			if b != 0xFF {
				t.Fatal("flash not erased")
			}
		}
		if !strings.Contains(strings.Join(logs, "\n"), "one by one") {
			t.Errorf("logs = %q", logs)
		}
		// A part the table marks NoMassErase is erased page by page without
		// asking.
		p := u.m.Part()
		p.NoMassErase = true
		c.SetPart(p)
		if err := c.MassErase(ctx); err != nil {
			t.Fatalf("MassErase() of a NoMassErase part = %v", err)
		}
		if st2 := u.m.Stats(); st2.NACKs != st.NACKs || st2.UnitsErased != 2*p.Units() {
			t.Errorf("Stats() = %+v, want every page erased again and no mass erase asked for", st2)
		}
	})
}

// TestSyncNoReset: a Reset hook that has no way to reset the unit
// (bootloader.ErrNoReset) fails nothing and costs no ResetDelay; the unit, its
// application running, is then simply not reached.
func TestSyncNoReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, "stm32f103", Options{Board: "sensor-b", Image: appImage(t, "stm32f103", "1.0", 4096)}, fast)
		u.dev.SetPower(true) // no strap: the application runs
		u.readUntil("ready", time.Second)
		calls := 0
		c := stm32.New(u.host, stm32.Options{SyncAttempts: 3, ResetDelay: time.Hour,
			Reset: func(context.Context) error { calls++; return fmt.Errorf("%w: no lines", bootloader.ErrNoReset) }})
		start := time.Now()
		err := c.Sync(ctx)
		if err == nil || errors.Is(err, bootloader.ErrNoReset) {
			t.Fatalf("Sync() with the application running and no way to reset = %v, want the sync timeout", err)
		}
		if waited := time.Since(start); waited >= time.Hour || calls != 2 {
			t.Errorf("Sync() took %v and called the hook %d times, want 2 calls and no ResetDelay (1h)", waited, calls)
		}
	})
}
