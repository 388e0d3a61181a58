package ubootsim

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/unbrick/unbrick/bootloader/ymodem"
	"github.com/unbrick/unbrick/sim"
)

const board = "hmi-a"

// unit is a simulated board on an in-memory link, for tests under synctest.
type unit struct {
	t    *testing.T
	host *sim.PipeHost
	dev  *sim.Device
	m    *Model
	rest []byte // read but not yet consumed
}

func newUnit(t *testing.T, o Options) *unit {
	t.Helper()
	if o.Serial == "" {
		o.Serial = "HMI-000042"
	}
	m, err := New(board, o)
	if err != nil {
		t.Fatal(err)
	}
	host, pd := sim.Pipe()
	line := sim.NewLine(sim.LineConfig{Fast: true})
	line.Attach(pd)
	d := sim.NewDevice(board, m, line)
	t.Cleanup(d.Close)
	return &unit{t: t, host: host, dev: d, m: m}
}

// readUntil reads until the text read since the last call contains want,
// and returns that text, or fails after within.
func (u *unit) readUntil(want string, within time.Duration) string {
	u.t.Helper()
	got := u.rest
	u.rest = nil
	buf := make([]byte, 512)
	end := time.Now().Add(within)
	u.host.SetReadTimeout(50 * time.Millisecond)
	for {
		if i := bytes.Index(got, []byte(want)); i >= 0 {
			u.rest = append([]byte(nil), got[i+len(want):]...)
			return string(got[:i+len(want)])
		}
		if !time.Now().Before(end) {
			break
		}
		n, err := u.host.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	u.t.Fatalf("after %v the unit sent %q, want it to contain %q", within, got, want)
	return ""
}

// port returns the host side as a bootloader.Port that first gives back
// what readUntil read past its match.
func (u *unit) port() *restPort { return &restPort{u} }

type restPort struct{ u *unit }

func (p *restPort) Read(b []byte) (int, error) {
	if len(p.u.rest) > 0 {
		n := copy(b, p.u.rest)
		p.u.rest = p.u.rest[n:]
		return n, nil
	}
	return p.u.host.Read(b)
}
func (p *restPort) Write(b []byte) (int, error)          { return p.u.host.Write(b) }
func (p *restPort) SetReadTimeout(d time.Duration) error { return p.u.host.SetReadTimeout(d) }

// stop powers the unit on and stops autoboot at the prompt.
func (u *unit) stop() {
	u.t.Helper()
	u.dev.SetPower(true)
	u.readUntil("Hit any key to stop autoboot", 5*time.Second)
	u.host.Write([]byte{' '})
	u.readUntil(Prompt, time.Second)
}

// run types a command and returns its output up to the next prompt.
func (u *unit) run(cmd string) string {
	u.t.Helper()
	u.host.Write([]byte(cmd + "\r"))
	out := u.readUntil("\r\n"+Prompt, 30*time.Second)
	out = strings.TrimSuffix(out, "\r\n"+Prompt)
	echo, rest, _ := strings.Cut(out, "\r\n")
	if echo != cmd {
		u.t.Fatalf("command %q echoed as %q", cmd, echo)
	}
	return rest
}

func TestAutobootReachesTheApplication(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, Options{A: SlotImage{Version: "2.1.0"}, B: SlotImage{Version: "2.0.0"}, BootDelay: time.Second})
		u.dev.SetPower(true)
		out := u.readUntil("hmi-a firmware v2.1.0 (id HMI-000042)\r\nready\r\n> ", 10*time.Second)
		for _, want := range []string{Version, "Loading Environment from MMC... OK", "Hit any key to stop autoboot:  1",
			"## Booting kernel from Legacy Image at 82000000", "Image Name:   Linux-2.1.0", "Verifying Checksum ... OK",
			"Starting kernel ...", "Machine model: hmi-a", "root=/dev/mmcblk0p2", "VFS: Mounted root (squashfs filesystem)"} {
			if !strings.Contains(out, want) {
				t.Errorf("boot log lacks %q:\n%s", want, out)
			}
		}
		if st := u.m.Stats(); st.Boots != 1 || st.Autoboots != 1 || st.KernelStarts != 1 || st.AppStarts != 1 || st.AltBoots != 0 {
			t.Errorf("Stats() = %+v, want one boot, autoboot, kernel and application start", st)
		}
		u.host.Write([]byte("version\r"))
		u.readUntil("2.1.0\r\n> ", time.Second)
	})
}

func TestConsoleCommands(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, Options{A: SlotImage{Version: "1.0"}})
		u.stop()
		data := []byte("123456789")
		tests := []struct {
			cmd  string
			want string // a substring of the output
		}{
			{"printenv serial#", "serial#=HMI-000042"},
			{"setenv serial# X", "## Error: Can't overwrite \"serial#\""},
			{"printenv nothere", "## Error: \"nothere\" not defined"},
			{"frobnicate", "Unknown command 'frobnicate' - try 'help'"},
			{"setenv x 82000000; echo ${x}", "82000000"},
			{"false && echo yes || echo no; echo S:$?", "S:1"}, // real hush skips to the next ;
			{"true && echo yes || echo no", "yes"},
			{"echo a\"\"b", "ab"},
			{"mw.b 82000000 31 1; mw.b 82000001 32 1; mw.b 82000002 33 1; mw.b 82000003 34 1", ""},
			{"md.b 82000000 4", "82000000: 31 32 33 34" + strings.Repeat(" ", 38) + "1234"}, // padded as real U-Boot pads
			{"mmc dev 1", "MMC Device 1 not found"},
			{"mmc read 82000000 7fffffff 2", "0 blocks read: ERROR"},
			{"sf probe", "Failed to initialize SPI flash"},
		}
		for _, tt := range tests {
			if got := u.run(tt.cmd); !strings.Contains(got, tt.want) {
				t.Errorf("%s printed %q, want %q in it", tt.cmd, got, tt.want)
			}
		}
		// crc32 over RAM prints "==>", which holds the prompt's "=> ".
		for i, c := range data {
			u.run(fmt.Sprintf("mw.b %x %x 1", KernelAddr+i, c))
		}
		got := u.run(fmt.Sprintf("crc32 %x %x", KernelAddr, len(data)))
		if want := fmt.Sprintf("crc32 for 82000000 ... 82000008 ==> %08x", crc32.ChecksumIEEE(data)); got != want {
			t.Errorf("crc32 printed %q, want %q", got, want)
		}
		// An empty line repeats a repeatable command.
		u.host.Write([]byte("\r"))
		if got := u.readUntil("\r\n"+Prompt, time.Second); !strings.Contains(got, "==> cbf43926") {
			t.Errorf("an empty line after crc32 printed %q, want the crc32 again", got)
		}
		// setenv without saveenv is lost at reset; with it, kept.
		u.run("setenv keep 1; setenv lost 1; saveenv; setenv lost2 1")
		env, err := u.m.Env()
		if err != nil || env["keep"] != "1" || env["lost2"] != "" {
			t.Errorf("stored environment = %v, %v; want keep=1 and no lost2", env, err)
		}
	})
}

func TestBrickedUnitBootLoops(t *testing.T) {
	tests := []struct {
		fault Fault
		want  string
	}{
		{Empty, "Wrong Image Format for bootm command"},
		{BadKernelMagic, "Wrong Image Format for bootm command"},
		{BadKernelHdr, "Bad Header Checksum"},
		{BadKernelCRC, "Verifying Checksum ... Bad Data CRC"},
		{NoDeviceTree, "ERROR: Did not find a cmdline Flattened Device Tree"},
		{NoRootFS, "VFS: Unable to mount root fs on unknown-block(179,2)"},
		{CorruptRootFS, "Kernel panic - not syncing: No working init found"},
	}
	for _, tt := range tests {
		t.Run(string(tt.fault), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := newUnit(t, Options{A: SlotImage{Version: "1.0", Fault: tt.fault}, B: SlotImage{Version: "0.9"},
					BootDelay: time.Second, PanicDelay: time.Second})
				u.dev.SetPower(true)
				u.readUntil(tt.want, 10*time.Second)
				u.readUntil(tt.want, 10*time.Second) // again, after a reset
				st := u.m.Stats()
				if st.Boots < 2 || st.AltBoots != 0 || st.AppStarts != 0 {
					t.Errorf("Stats() = %+v, want a boot loop on slot a", st)
				}
				if _, err := u.m.CheckSlot("a"); err == nil {
					t.Errorf("CheckSlot(a) = nil, want the fault %s", tt.fault)
				}
			})
		})
	}
}

func TestWrongBoardKernelHangsUntilTheWatchdog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, Options{A: SlotImage{Version: "1.0", Fault: WrongBoard}, BootDelay: time.Second, Watchdog: 5 * time.Second})
		u.dev.SetPower(true)
		u.readUntil("Starting kernel ...\r\n\r\n", 10*time.Second)
		start := time.Now()
		u.readUntil(Version, 10*time.Second)
		if d := time.Since(start); d < 5*time.Second {
			t.Errorf("the unit restarted %v after starting the kernel, want the 5 s watchdog", d)
		}
	})
}

func TestBootcountFallsBackToTheOtherSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, Options{A: SlotImage{Version: "2.0", Fault: BadKernelCRC}, B: SlotImage{Version: "1.9"},
			UpgradeAvailable: true, BootDelay: time.Second})
		u.dev.SetPower(true)
		u.readUntil("Warning: Bootlimit (3) exceeded. Using altbootcmd.", 30*time.Second)
		u.readUntil("hmi-a firmware v1.9", 10*time.Second)
		st := u.m.Stats()
		if st.Boots != 4 || st.AltBoots != 1 || st.AppStarts != 1 {
			t.Errorf("Stats() = %+v, want 4 boots, 1 altboot, 1 application start", st)
		}
		env, err := u.m.Env()
		if err != nil || env["boot_slot"] != "b" || env["upgrade_available"] != "0" || env["bootcount"] != "0" {
			t.Errorf("Env() = boot_slot %q upgrade_available %q bootcount %q, %v; want b, 0, 0",
				env["boot_slot"], env["upgrade_available"], env["bootcount"], err)
		}
	})
}

func TestBadEnvironmentUsesTheDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, Options{A: SlotImage{Version: "1.0"}, BadEnv: true, Env: map[string]string{"foo": "bar"}})
		u.dev.SetPower(true)
		u.readUntil("*** Warning - bad CRC, using default environment", 5*time.Second)
		u.readUntil("Hit any key", 5*time.Second)
		u.host.Write([]byte{' '})
		u.readUntil(Prompt, time.Second)
		if got := u.run("printenv foo serial#"); !strings.Contains(got, `"foo" not defined`) || !strings.Contains(got, "serial#=HMI-000042") {
			t.Errorf("printenv printed %q, want foo undefined and serial# from OTP", got)
		}
	})
}

// TestLoadyWriteBoot writes a new slot a through loady, mmc write and the
// project's YMODEM sender, then boots it.
func TestLoadyWriteBoot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, Options{Layout: BenchLayout, A: SlotImage{Version: "1.0", Fault: BadKernelCRC}})
		u.stop()
		img, off, err := Bundle("3.0", board, BenchLayout, "a")
		if err != nil {
			t.Fatal(err)
		}
		u.host.Write([]byte("loady 82000000\r"))
		u.readUntil("## Ready for binary (ymodem) download to 0x82000000 at 115200 bps...\r\n", time.Second)
		err = ymodem.Send(context.Background(), u.port(), []ymodem.File{{Name: "slot.bin", Data: img}}, ymodem.Options{DataStartWait: -1})
		if err != nil {
			t.Fatalf("Send() = %v", err)
		}
		u.readUntil(fmt.Sprintf("## Total Size      = 0x%08x = %d Bytes\r\n## Start Addr      = 0x82000000\r\n%s", len(img), len(img), Prompt), 5*time.Second)
		if got, err := u.m.RAM(KernelAddr, len(img)); err != nil || !bytes.Equal(got, img) {
			t.Fatalf("RAM after loady differs from what was sent (err %v)", err)
		}
		if st := u.m.Stats(); st.LoadyBytes != len(img) || st.LoadyRetries != 0 {
			t.Errorf("Stats() = %+v, want %d bytes loaded without retries", st, len(img))
		}
		if got, want := u.run(fmt.Sprintf("crc32 82000000 %x", len(img))), fmt.Sprintf("==> %08x", crc32.ChecksumIEEE(img)); !strings.Contains(got, want) {
			t.Errorf("crc32 printed %q, want %q", got, want)
		}
		blocks := (len(img) + BlockSize - 1) / BlockSize
		got := u.run(fmt.Sprintf("mmc write 82000000 %x %x", off/BlockSize, blocks))
		if want := fmt.Sprintf("MMC write: dev # 0, block # %d, count %d ... %d blocks written: OK", off/BlockSize, blocks, blocks); !strings.Contains(got, want) {
			t.Errorf("mmc write printed %q, want %q", got, want)
		}
		info, err := u.m.CheckSlot("a")
		if err != nil || info.RootFS.Version != "3.0" {
			t.Fatalf("CheckSlot(a) = %+v, %v; want version 3.0", info, err)
		}
		u.host.Write([]byte("boot\r"))
		u.readUntil("hmi-a firmware v3.0 (id HMI-000042)", 10*time.Second)
	})
}

func TestLoadyTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, Options{A: SlotImage{Version: "1.0"}, LoadyTimeout: 10 * time.Second})
		u.stop()
		start := time.Now()
		u.host.Write([]byte("loady\r"))
		out := u.readUntil("## Total Size      = 0x00000000 = 0 Bytes", 30*time.Second)
		if !strings.Contains(out, "Timed out") {
			t.Errorf("loady without a sender printed %q, want Timed out", out)
		}
		if d := time.Since(start); d < 10*time.Second || d > 16*time.Second {
			t.Errorf("loady gave up after %v, want about 10 s", d)
		}
		// It asked again for CRC blocks while waiting.
		if n := strings.Count(out, "C"); n < 2 {
			t.Errorf("loady sent %d 'C's in 10 s, want it to repeat them", n)
		}
	})
}

func TestSPIFlash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, Options{A: SlotImage{Version: "1.0"}, SPIFlash: true})
		u.stop()
		for _, tt := range []struct{ cmd, want string }{
			{"sf erase 0 10000", "No SPI flash selected"},
			{"sf probe", "SF: Detected w25q128 with page size 256 Bytes, erase size 64 KiB, total 16 MiB"},
			{"mw.b 82000000 5a 100", ""},
			{"sf erase 1000 10000", "not multiple of erase size"},
			{"sf erase 10000 +100", "SF: 65536 bytes @ 0x10000 Erased: OK"},
			{"sf write 82000000 10000 100", "SF: 256 bytes @ 0x10000 Written: OK"},
			{"sf read 83000000 10000 200", "SF: 512 bytes @ 0x10000 Read: OK"},
			{"md.b 830000fe 4", "830000fe: 5a 5a ff ff"},
		} {
			if got := u.run(tt.cmd); !strings.Contains(got, tt.want) {
				t.Errorf("%s printed %q, want %q in it", tt.cmd, got, tt.want)
			}
		}
		if b, _ := u.m.NOR().Read(0x100ff, 2); !bytes.Equal(b, []byte{0x5a, 0xff}) {
			t.Errorf("NOR at 0x100ff = % x, want 5a ff", b)
		}
	})
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, tt := range []struct {
		name  string
		board string
		o     Options
	}{
		{"no board", "", Options{Serial: "X"}},
		{"no serial", board, Options{}},
		{"bad slot", board, Options{Serial: "X", BootSlot: "c"}},
		{"bad fault", board, Options{Serial: "X", A: SlotImage{Version: "1", Fault: "melted"}}},
	} {
		if _, err := New(tt.board, tt.o); err == nil {
			t.Errorf("New(%q, %s) = nil error, want one", tt.board, tt.name)
		}
	}
}
