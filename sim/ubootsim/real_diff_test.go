package ubootsim

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.bug.st/serial"

	"github.com/unbrick/unbrick/bootloader/ymodem"
	"github.com/unbrick/unbrick/internal/peertest"
)

// diffLines are the command lines the differential test sends to real
// U-Boot 2023.01 (Debian's qemu_arm64 build in QEMU) and to the model. $A
// is a RAM address (0x40200000 on the real board, 0x82000000 on the model);
// outputs are compared after normalising it.
var diffLines = []string{
	"true; echo S:$?",
	"false; echo S:$?",
	"false && echo A || echo B",
	"true && echo A || echo B",
	"false || echo B && echo C",
	"true || echo A && echo B; echo C",
	"false && echo A; echo S:$?",
	"printenv unb_nosuch; echo S:$?",
	"printenv unb_nosuch || echo B",
	"printenv unb_nosuch && echo X:0 || echo X:1",
	`setenv unb "a b;c"; echo S:$?`,
	"printenv unb",
	"setenv unb2 'x $unb'; printenv unb2",
	`echo "$unb" ${unb}`,
	"setenv unb; printenv unb; echo S:$?",
	"frobnicate; echo S:$?",
	`echo a"" b`,
	"x=5; echo $x; x=7; echo ${x}",
	"echo " + strings.Repeat("x", 300) + "; echo S:$?",
	"echo " + strings.Repeat("y", 600) + "; echo S:$?",
	"echo " + strings.Repeat("z", 1100) + "; echo S:$?",
	"mw.b $A 5a 100; crc32 $A 100",
	"crc32 $A 0; echo S:$?",
	"md.b $A 4",
	"md.b $A 20",
	"cmp.b $A $A 10; echo S:$?",
	"mw.b $A 5a 200; mw.b $A 1 1; cmp.b $A $B 10; echo S:$?",
	"cmp.b $B $A 10; echo S:$?",
	"crc32; echo S:$?",
	"md; echo S:$?",
}

// storageLines exercise the block interfaces and the CFI NOR flash: $F is
// a flash sector (0x04100000 on QEMU, in the second bank; 0x08100000 on
// the model), $G inside it, $H past its end, $I its last byte, $J its
// second byte. The disks are 4 MiB (8192 blocks).
var storageLines = []string{
	"virtio scan; echo S:$?",
	"virtio info",
	"virtio dev 0; echo S:$?",
	"virtio dev 3; echo S:$?",
	"mw.b $A 5a 1000; virtio write $A 10 8; echo S:$?",
	"virtio read $B 10 8; echo S:$?",
	"cmp.b $A $B 1000; echo S:$?",
	"virtio write $A 2000 8; echo S:$?",
	"nvme scan; echo S:$?",
	"nvme info",
	"nvme dev 0; echo S:$?",
	"nvme dev 1; echo S:$?",
	"nvme write $A 10 8; echo S:$?",
	"nvme read $B 10 8; echo S:$?",
	"scsi dev 0; echo S:$?",
	"scsi write $A 10 8; echo S:$?",
	"scsi read $B 10 8; echo S:$?",
	"usb dev 0; echo S:$?",
	"protect off $F +20000; echo S:$?",
	"erase $F +20000; echo S:$?",
	"cp.b $A $F 100; echo S:$?",
	"cmp.b $A $F 100; echo S:$?",
	"md.b $F 10",
	"crc32 $F 100",
	"mw.b $A a5 100; cp.b $A $F 100; echo S:$?",
	"protect on $F +20000; echo S:$?",
	"cp.b $A $G 10; echo S:$?",
	"erase $F +20000; echo S:$?",
	"erase $F $H; echo S:$?",
	"protect off $F $I; echo S:$?",
	"erase $F $I; echo S:$?",
	"erase $J +10; echo S:$?",
	"cp.b $F $A 10; echo S:$?",
	"md.b $A 10",
}

var realAddr = map[bool]string{true: "40200000", false: "82000000"}

// flashAt is where the lines' flash sector is on each side.
var flashAt = map[bool]uint64{true: 0x04100000, false: CFIBase + 0x100000}

// expand fills in a line's placeholders for one side.
func expand(line string, real bool) string {
	f := flashAt[real]
	r := strings.NewReplacer("$A", realAddr[real], "$B", realAddr[real][:5]+"100",
		"$F", fmt.Sprintf("%x", f), "$G", fmt.Sprintf("%x", f+0x10000), "$H", fmt.Sprintf("%x", f+0x20000),
		"$I", fmt.Sprintf("%x", f+0x1ffff), "$J", fmt.Sprintf("%x", f+1))
	return r.Replace(line)
}

// normalise makes the two outputs comparable: the RAM addresses (and the
// address below them that crc32 of 0 bytes prints as its end), and md's
// ".q" which only a 64-bit build has (the model is a 32-bit i.MX6ULL).
func normalise(out string, real bool) string {
	re := regexp.MustCompile(`(?i)\b(0x)?` + realAddr[real][:4] + `([0-9a-f]{4})\b`)
	out = re.ReplaceAllString(out, "${1}ADDR$2")
	fl := regexp.MustCompile(`(?i)\b(0x)?0?` + fmt.Sprintf("%x", flashAt[real]>>20) + `([0-9a-f]{5})\b`)
	out = fl.ReplaceAllString(out, "${1}FLASH$2")
	below := map[bool]string{true: "401fffff", false: "81ffffff"}[real]
	out = strings.ReplaceAll(out, below, "ADDR-1")
	return strings.ReplaceAll(out, ", .q]", "]")
}

// realConsole is the real U-Boot's console for the test's own typing.
type realConsole struct {
	t    *testing.T
	port serial.Port
}

func (c *realConsole) readUntil(want string, within time.Duration) string {
	c.t.Helper()
	var got []byte
	buf := make([]byte, 4096)
	c.port.SetReadTimeout(100 * time.Millisecond)
	end := time.Now().Add(within)
	for time.Now().Before(end) {
		n, err := c.port.Read(buf)
		if err != nil {
			c.t.Fatal(err)
		}
		got = append(got, buf[:n]...)
		if n == 0 && bytes.HasSuffix(got, []byte(want)) {
			return string(got)
		}
	}
	c.t.Fatalf("real U-Boot sent %q, want it to end in %q", got, want)
	return ""
}

func (c *realConsole) run(line string) string {
	c.t.Helper()
	c.port.Write([]byte(line + "\r"))
	return strings.TrimSuffix(c.readUntil("\r\n=> ", 30*time.Second), "\r\n=> ")
}

// serialPort adapts a serial.Port to bootloader.Port.
type serialPort struct {
	serial.Port
	got *[]byte
}

func (p serialPort) Read(b []byte) (int, error) {
	n, err := p.Port.Read(b)
	*p.got = append(*p.got, b[:n]...)
	return n, err
}

func (p serialPort) SetReadTimeout(d time.Duration) error { return p.Port.SetReadTimeout(d) }

func TestDifferentialReal(t *testing.T) {
	port, rc := realPrompt(t)
	lines := append(append([]string(nil), diffLines...), storageLines...)
	realOut := make([]string, len(lines))
	for i, l := range lines {
		if l == storageLines[0] {
			rc.run("scsi scan") // AHCI's own chatter: not compared
		}
		realOut[i] = normalise(rc.run(expand(l, true)), true)
	}
	// loady: banner, the 'C's, and what it prints after the transfer.
	data := make([]byte, 3000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	port.Write([]byte(expand("loady $A", true) + "\r"))
	realReady := normalise(rc.readUntil("C", 10*time.Second), true)
	var during []byte
	if err := ymodem.Send(context.Background(), serialPort{port, &during}, []ymodem.File{{Name: "x.bin", Data: data}}, ymodem.Options{DataStartWait: -1, Timeout: 5 * time.Second}); err != nil {
		t.Fatalf("YMODEM into real U-Boot: %v", err)
	}
	realLoady := normalise(rc.readUntil("\r\n=> ", 10*time.Second), true)
	if bytes.Contains(during, []byte("xyzModem")) {
		t.Errorf("real U-Boot printed a summary during the transfer: %q", during)
	}

	var modelOut []string
	var modelReady, modelLoady string
	synctest.Test(t, func(t *testing.T) {
		mu := newUnit(t, Options{BootDelay: time.Second, LineMax: 512, CFIFlash: true,
			Block: []BlockDevice{{"virtio", 4 << 20}, {"nvme", 4 << 20}, {"scsi", 4 << 20}}})
		mu.stop()
		for _, l := range lines {
			if l == storageLines[0] {
				mu.run("scsi scan")
			}
			mu.host.Write([]byte(expand(l, false) + "\r"))
			out := strings.TrimSuffix(mu.readUntil("\r\n"+Prompt, 30*time.Second), "\r\n"+Prompt)
			modelOut = append(modelOut, normalise(out, false))
		}
		mu.host.Write([]byte(expand("loady $A", false) + "\r"))
		modelReady = normalise(mu.readUntil("C", 10*time.Second), false)
		if err := ymodem.Send(context.Background(), mu.port(), []ymodem.File{{Name: "x.bin", Data: data}}, ymodem.Options{DataStartWait: -1, Timeout: 5 * time.Second}); err != nil {
			t.Fatalf("YMODEM into the model: %v", err)
		}
		modelLoady = normalise(mu.readUntil("\r\n=> ", 10*time.Second), false)
	})
	for i, l := range lines {
		if realOut[i] != modelOut[i] {
			r, m := realOut[i], modelOut[i]
			for len(r) > 0 && len(m) > 0 && r[0] == m[0] {
				r, m = r[1:], m[1:]
			}
			t.Errorf("%.60q: outputs differ after %d equal bytes:\n real  %.200q\n model %.200q", l, len(realOut[i])-len(r), r, m)
		}
	}
	if realReady != modelReady {
		t.Errorf("loady's banner:\n real  %q\n model %q", realReady, modelReady)
	}
	if realLoady != modelLoady {
		t.Errorf("loady after the transfer:\n real  %q\n model %q", realLoady, modelLoady)
	}
	if os.Getenv("UNBRICK_DIFF_VERBOSE") != "" {
		t.Logf("%d command lines and loady compared", len(lines))
	}
	_ = fmt.Sprint
}

// realPrompt boots real U-Boot under QEMU with a virtio, an NVMe and a SATA
// disk of 4 MiB and a CFI flash, stops it at its prompt, and returns its
// port and a console reading it.
func realPrompt(t *testing.T) (serial.Port, *realConsole) {
	t.Helper()
	dir := t.TempDir()
	o := peertest.UBootOptions{Disk: dir + "/virtio.img", NVMe: dir + "/nvme.img", SATA: dir + "/sata.img", Flash: dir + "/flash.img"}
	for _, d := range []string{o.Disk, o.NVMe, o.SATA} {
		peertest.WriteDiskFile(t, d, 4<<20)
	}
	peertest.WriteFlashFile(t, o.Flash)
	u := peertest.StartUBoot(t, o)
	port, err := serial.Open(u.Path, &serial.Mode{BaudRate: 115200})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { port.Close() })
	rc := &realConsole{t: t, port: port}
	port.Write([]byte{3})
	rc.readUntil("=> ", 5*time.Second)
	return port, rc
}
