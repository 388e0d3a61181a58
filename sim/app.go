package sim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"time"
)

// The simulated units run a demo application whose image carries an
// AppDescriptor at a fixed, family-specific offset (after the STM32 vector
// table, inside an ESP app image, ...). A unit's boot logic checks it the way
// real boot code checks an image: present, complete, checksum right, built
// for this board.
//
// Layout, little-endian, DescriptorSize bytes:
//
//	0  magic "UNBRICK1"
//	8  u32 length of the whole image in bytes
//	12 u32 CRC-32 (IEEE) of the whole image, this field read as zero
//	16 version, 24 bytes, NUL-padded
//	40 target board, 16 bytes, NUL-padded
//	56 u32 flags, u32 reserved
const (
	DescriptorSize = 64
	descMagic      = "UNBRICK1"
)

// AppDescriptor describes a demo application image.
type AppDescriptor struct {
	Version string // "1.4.2"
	Target  string // the board it is built for, e.g. "sensor-b"
	Length  uint32 // bytes in the whole image
	CRC     uint32
}

// Image problems found by ParseApp, named as boot code reports them.
var (
	ErrNoImage     = errors.New("no application image (flash erased or header missing)")
	ErrBadChecksum = errors.New("bad image checksum")
	ErrTruncated   = errors.New("image length exceeds flash")
)

// BuildApp returns an application image of size bytes: prologue (the
// family's vector table or header) at the start, the descriptor at
// descOffset, and the rest filled with bytes derived from the version, so
// two versions never have the same content.
func BuildApp(prologue []byte, descOffset, size int, version, target string) ([]byte, error) {
	if size < descOffset+DescriptorSize || len(prologue) > descOffset {
		return nil, fmt.Errorf("sim: image of %d bytes cannot hold a %d-byte prologue and the descriptor at %#x", size, len(prologue), descOffset)
	}
	if len(version) > 24 || len(target) > 16 {
		return nil, fmt.Errorf("sim: version %q (max 24 bytes) or target %q (max 16 bytes) too long", version, target)
	}
	img := make([]byte, size)
	seed := crc32.ChecksumIEEE([]byte(version + "/" + target))
	r := rand.New(rand.NewPCG(uint64(seed), uint64(size)))
	for i := range img {
		img[i] = byte(r.Uint32())
	}
	copy(img, prologue)
	d := img[descOffset : descOffset+DescriptorSize]
	clear(d)
	copy(d, descMagic)
	binary.LittleEndian.PutUint32(d[8:], uint32(size))
	copy(d[16:40], version)
	copy(d[40:56], target)
	binary.LittleEndian.PutUint32(d[12:], crc32.ChecksumIEEE(img))
	return img, nil
}

// ParseApp checks the image at the start of mem, whose descriptor sits at
// descOffset. mem may be longer than the image (the rest of the flash).
func ParseApp(mem []byte, descOffset int) (AppDescriptor, error) {
	if len(mem) < descOffset+DescriptorSize {
		return AppDescriptor{}, ErrNoImage
	}
	d := mem[descOffset : descOffset+DescriptorSize]
	if string(d[:8]) != descMagic {
		return AppDescriptor{}, ErrNoImage
	}
	a := AppDescriptor{
		Length:  binary.LittleEndian.Uint32(d[8:]),
		CRC:     binary.LittleEndian.Uint32(d[12:]),
		Version: cstr(d[16:40]),
		Target:  cstr(d[40:56]),
	}
	if int64(a.Length) > int64(len(mem)) || a.Length < uint32(descOffset+DescriptorSize) {
		return a, ErrTruncated
	}
	h := crc32.NewIEEE()
	h.Write(mem[:descOffset+12])
	h.Write([]byte{0, 0, 0, 0})
	h.Write(mem[descOffset+16 : a.Length])
	if h.Sum32() != a.CRC {
		return a, ErrBadChecksum
	}
	return a, nil
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// AppConsole is what the demo application needs from its unit to serve its
// console: identity and, optionally, data regions it can show.
type AppConsole struct {
	Desc   AppDescriptor
	Board  string            // the board the unit really is; a mismatch with Desc.Target is a fault
	ID     string            // the unit's identity (unique ID, MAC), printed by "id"
	Baud   int               // console rate; 0 means 115200
	Boot   []string          // lines printed before the banner (a boot log)
	Extra  map[string]string // more commands and their one-line answers
	Reboot time.Duration     // for a wrong-board image: how long before the watchdog resets
}

// RunApp serves the demo application's console on s until the run ends. It
// prints the boot log and the banner
//
//	<target> firmware v<version> (id <ID>)
//
// then "ready" and a "> " prompt, and answers the commands version, id,
// status, help and the Extra ones. An image built for another board prints
// an error and resets after c.Reboot, a boot loop.
func RunApp(s *Session, c AppConsole) {
	baud := c.Baud
	if baud == 0 {
		baud = 115200
	}
	s.SetBaud(baud)
	c.Desc.Version = s.line.appVersion(c.Desc.Version) // an injected fault (fault.go)
	for _, l := range c.Boot {
		if s.Print(l+"\r\n") != nil {
			return
		}
	}
	if c.Board != "" && c.Desc.Target != c.Board {
		BootLoop(s, fmt.Sprintf("FATAL: image built for board %q, this is %q", c.Desc.Target, c.Board), c.Reboot)
		return
	}
	banner := fmt.Sprintf("%s firmware v%s (id %s)\r\nready\r\n> ", c.Desc.Target, c.Desc.Version, c.ID)
	if s.Print(banner) != nil {
		return
	}
	var line []byte
	for {
		b, err := s.ReadByte()
		if err != nil {
			return
		}
		switch b {
		case '\r', '\n':
			cmd := strings.TrimSpace(string(line))
			line = line[:0]
			if cmd == "" {
				if s.Print("> ") != nil {
					return
				}
				continue
			}
			if s.Print(appAnswer(c, cmd)+"\r\n> ") != nil {
				return
			}
		default:
			if len(line) < 256 {
				line = append(line, b)
			}
		}
	}
}

func appAnswer(c AppConsole, cmd string) string {
	switch cmd {
	case "version":
		return c.Desc.Version
	case "id":
		return c.ID
	case "status":
		return "OK"
	case "help":
		cmds := []string{"version", "id", "status"}
		for k := range c.Extra {
			cmds = append(cmds, k)
		}
		return "commands: " + strings.Join(cmds, " ")
	}
	if a, ok := c.Extra[cmd]; ok {
		return a
	}
	return "unknown command: " + cmd
}

// BootLoop prints msg, waits period (1 s if zero) and resets the unit, as a
// bricked unit's boot code does over and over. The caller returns from Run
// after it.
func BootLoop(s *Session, msg string, period time.Duration) {
	if period == 0 {
		period = time.Second
	}
	if s.Print(msg+"\r\n") != nil {
		return
	}
	if s.Wait(period) != nil {
		return
	}
	s.Reset()
}
