package uboot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/unbrick/unbrick/bootloader"
	"github.com/unbrick/unbrick/bootloader/ymodem"
)

// Options configure a Client. The zero value works for a stock U-Boot at
// 115200 with the hush shell.
type Options struct {
	// Prompt is the command prompt. "" means DefaultPrompt.
	Prompt string
	// StopWait is how long Stop waits for the autoboot countdown or a
	// prompt. 0 means 20 s.
	StopWait time.Duration
	// Timeout is how long a command may take beyond its own wire time and
	// the storage work it asks for. 0 means 5 s.
	Timeout time.Duration
	// Baud is the line rate, used only to size deadlines. 0 means 115200.
	Baud int
	// YMODEM tunes loady's transfers. Its zero value is set for U-Boot's
	// receiver: no wait for a 'C' after block 0, a 5 s answer timeout and 3
	// retries a block, so that a unit that stops answering ends the
	// transfer within about 25 s.
	YMODEM ymodem.Options
	// Log, if set, receives everything read from the console, in order.
	Log func([]byte)
	// LineMax is the board's CONFIG_SYS_CBSIZE: U-Boot keeps at most
	// LineMax typed characters a line and beeps at the rest
	// (common/cli_readline.c), so the client refuses a longer line, marker
	// included. 0 means 256, the value of many boards (Debian's qemu_arm64
	// build has 512).
	LineMax int
	// Chunk is how many characters the client types before it waits for
	// their echo: a U-Boot that polls its UART drops what arrives while
	// it is busy, so every line is checked, echo against typed, before
	// Enter, and typed again after a Ctrl-C if a character went missing.
	// 0 means 32 (a 16550's FIFO is 16 to 64 bytes).
	Chunk int
	// StopString is the key sequence that stops a keyed autoboot
	// (CONFIG_AUTOBOOT_KEYED, CONFIG_AUTOBOOT_STOP_STR or the bootstopkey
	// variable; common/autoboot.c). "" means any key: Ctrl-C.
	StopString string
}

// Storage budgets for deadlines: slow eMMC and NOR parts, several times
// what typical ones need.
const (
	mmcBytesPerSec  = 2 << 20
	sfWritePerByte  = 20 * time.Microsecond
	sfErasePerBlock = 3 * time.Second
)

// Client drives a U-Boot console over a Port. It is not safe for
// concurrent use.
type Client struct {
	port  bootloader.Port
	conn  *bootloader.Conn
	opts  Options
	buf   []byte // read from the console, not yet consumed
	nonce uint32
	seq   uint32
	sf    *SFInfo // what sf probe found, once probed
	// scanned holds the block interfaces scanned (virtio scan, ...).
	scanned map[string]bool
	// loadBaud is the rate loady receives at; 0 is the console's.
	loadBaud int
}

// SetLoadBaud makes later loads (Load, Write) run loady ADDR BAUD: U-Boot
// switches its UART to baud for the transfer and back afterwards. 0, or
// the console rate, loads at the console rate. The port must implement
// bootloader.BaudSetter.
func (c *Client) SetLoadBaud(baud int) { c.loadBaud = baud }

// Restarted tells the client the unit was reset: it forgets what it
// probed (sf probe, block interface scans) and what it had buffered. Call
// Stop next.
func (c *Client) Restarted() {
	c.sf, c.scanned, c.buf = nil, nil, c.buf[:0]
}

// RateError says loady could not be driven at Baud. Stuck is set when the
// unit may be left waiting for a CR at a rate the host cannot reach (cmd/
// load.c reads for ever): only a reset gets it back. Otherwise the console
// is back at its own rate and the prompt answers.
type RateError struct {
	Baud  int
	Stuck bool
	Err   error
}

func (e *RateError) Error() string {
	s := fmt.Sprintf("uboot: loady at %d bps failed", e.Baud)
	if e.Stuck {
		s += " (the unit may wait for a CR at that rate until it is reset)"
	}
	return s + ": " + e.Err.Error()
}

func (e *RateError) Unwrap() error { return e.Err }

// New returns a client on p. It does not touch the port.
func New(p bootloader.Port, o Options) *Client {
	if o.Prompt == "" {
		o.Prompt = DefaultPrompt
	}
	if o.StopWait == 0 {
		o.StopWait = 20 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Baud == 0 {
		o.Baud = 115200
	}
	if o.LineMax == 0 {
		o.LineMax = 256
	}
	if o.Chunk <= 0 {
		o.Chunk = 32
	}
	y := &o.YMODEM
	y.DataStartWait = -1
	if y.Timeout == 0 {
		y.Timeout = 5 * time.Second
	}
	if y.Retries == 0 {
		y.Retries = 3
	}
	if y.StartTimeout == 0 {
		y.StartTimeout = 10 * time.Second
	}
	c := &Client{port: p, opts: o, nonce: rand.Uint32() & 0xFFFF}
	c.conn = bootloader.NewConn(&logPort{c})
	return c
}

// logPort passes what is read to Options.Log.
type logPort struct{ c *Client }

func (l *logPort) Read(p []byte) (int, error) {
	n, err := l.c.port.Read(p)
	if n > 0 && l.c.opts.Log != nil {
		l.c.opts.Log(p[:n])
	}
	return n, err
}

func (l *logPort) Write(p []byte) (int, error)          { return l.c.port.Write(p) }
func (l *logPort) SetReadTimeout(d time.Duration) error { return l.c.port.SetReadTimeout(d) }

// bufPort gives the YMODEM sender what the client has buffered before what
// the port delivers, so that it sees a 'C' that came with console text.
type bufPort struct{ logPort }

func (b *bufPort) Read(p []byte) (int, error) {
	if len(b.c.buf) > 0 {
		n := copy(p, b.c.buf)
		b.c.buf = b.c.buf[n:]
		return n, nil
	}
	return b.logPort.Read(p)
}

// wire returns the time n bytes take on the line.
func (c *Client) wire(n int) time.Duration {
	return time.Duration(int64(n) * 10 * int64(time.Second) / int64(c.opts.Baud))
}

// fill reads what arrives within wait into the buffer; a timeout is not an
// error.
func (c *Client) fill(ctx context.Context, wait time.Duration, op string) error {
	var tmp [512]byte
	n, err := c.conn.ReadSome(ctx, tmp[:], wait, op)
	c.buf = append(c.buf, tmp[:n]...)
	return err
}

// until reads until find reports a match in the buffer, then consumes the
// buffer up to the end of the match and returns what it consumed.
func (c *Client) until(ctx context.Context, wait time.Duration, op string, find func([]byte) int) (string, error) {
	end := time.Now().Add(wait)
	for {
		if i := find(c.buf); i >= 0 {
			out := string(c.buf[:i])
			c.buf = c.buf[i:]
			return out, nil
		}
		left := time.Until(end)
		if left <= 0 {
			return string(c.buf), &bootloader.TimeoutError{Op: op, After: wait, Got: len(c.buf)}
		}
		if err := c.fill(ctx, left, op); err != nil {
			var te *bootloader.TimeoutError
			if errors.As(err, &te) {
				return string(c.buf), &bootloader.TimeoutError{Op: op, After: wait, Got: len(c.buf)}
			}
			return string(c.buf), err
		}
	}
}

// after returns a finder for s: the index just past its first occurrence.
func after(s string) func([]byte) int {
	return func(b []byte) int {
		if i := bytes.Index(b, []byte(s)); i >= 0 {
			return i + len(s)
		}
		return -1
	}
}

// Stop gets the unit to its command prompt: it interrupts the autoboot
// countdown (it sends Ctrl-C until the countdown or a prompt shows, so a
// key already waiting stops a short countdown too), then checks with a
// marker command that the shell answers. Call it right after the unit is
// reset or powered; it also works on a unit already at its prompt.
func (c *Client) Stop(ctx context.Context) error {
	end := time.Now().Add(c.opts.StopWait)
	var seen []byte
	lastKey := time.Time{}
	for time.Now().Before(end) {
		if time.Since(lastKey) >= 100*time.Millisecond {
			key := []byte{0x03}
			if c.opts.StopString != "" {
				key = []byte(c.opts.StopString)
			}
			if err := c.conn.Write(key); err != nil {
				return err
			}
			lastKey = time.Now()
		}
		err := c.fill(ctx, 50*time.Millisecond, "U-Boot's autoboot countdown or prompt")
		var te *bootloader.TimeoutError
		if err != nil && !errors.As(err, &te) {
			return err
		}
		seen = append(seen, c.buf...)
		if len(seen) > 4096 {
			seen = seen[len(seen)-4096:]
		}
		c.buf = c.buf[:0]
		if !bytes.HasSuffix(bytes.TrimRight(seen, " "), []byte(strings.TrimRight(c.opts.Prompt, " "))) {
			continue
		}
		// A prompt: let the Ctrl-Cs already sent come back, then check.
		if _, err := c.conn.Discard(ctx, 30*time.Millisecond, time.Second); err != nil {
			return err
		}
		c.buf = c.buf[:0]
		if _, err := c.exec(ctx, "true", time.Second); err == nil {
			return nil
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
		seen = seen[:0]
	}
	return &bootloader.TimeoutError{Op: fmt.Sprintf("U-Boot's prompt %q (autoboot not stopped: is bootdelay 0 or -2, does autoboot want a stop string (recipe option stopstr), or is the unit booting Linux?)", c.opts.Prompt), After: c.opts.StopWait}
}

// marker returns the marker text for the next command and the way it is
// typed (with "" inside, so that the echo of the command line never holds
// it).
func (c *Client) marker() (typed, tag string) {
	c.seq++
	id := fmt.Sprintf("%04x%04x", c.nonce, c.seq&0xFFFF)
	return `UB""K` + id, "UBK" + id
}

// send types a command line followed by an echo of its marker and the
// command's exit status, checks the echo, presses Enter and returns the
// marker tag.
//
// The status comes from hush's $? after ';': U-Boot's hush (common/cli_hush.c,
// run_list_real) is not a POSIX shell: after "a && b || c" with a failing a
// it skips everything up to the next ';', so the "|| echo" of a marker
// would never print.
func (c *Client) send(ctx context.Context, cmd string) (string, error) {
	if strings.ContainsAny(cmd, "\r\n\x03") {
		return "", fmt.Errorf("uboot: command %q holds a line break or Ctrl-C", cmd)
	}
	typed, tag := c.marker()
	line := fmt.Sprintf("%s; echo %s:$?", cmd, typed)
	if len(line) > c.opts.LineMax {
		return "", fmt.Errorf("uboot: command %q is too long: with its marker it takes %d characters, and the board's line holds %d (CONFIG_SYS_CBSIZE, recipe option cbsize)", cmd, len(line), c.opts.LineMax)
	}
	return tag, c.typeLine(ctx, line)
}

// typeLine types line in chunks, reading the echo of each before the next,
// and presses Enter only once the whole echo matches: a character the
// unit dropped or mangled would otherwise run a different command. On a
// mismatch it discards the line with Ctrl-C and types it again, in
// smaller chunks.
func (c *Client) typeLine(ctx context.Context, line string) error {
	chunk := c.opts.Chunk
	var lastErr error
	for try := 0; try < 4; try++ {
		c.buf = c.buf[:0]
		ok := true
		for i := 0; i < len(line) && ok; i += chunk {
			end := min(i+chunk, len(line))
			if err := c.conn.Write([]byte(line[i:end])); err != nil {
				return err
			}
			want := []byte(line[i:end])
			got, err := c.until(ctx, c.opts.Timeout/2+c.wire(2*chunk), "the echo of the typed line", func(b []byte) int {
				if len(b) >= len(want) || !bytes.HasPrefix(want, b) {
					return len(b)
				}
				return -1
			})
			if err != nil {
				var te *bootloader.TimeoutError
				if !errors.As(err, &te) {
					return err
				}
			}
			if got != string(want) {
				ok = false
				if lastErr != nil {
					continue
				}
				lastErr = &ProtocolError{Op: "typing " + strconvQuote(line), Err: ErrUnexpected,
					Detail: fmt.Sprintf("the unit echoed %q, want %q (characters dropped: a polled UART, or a line longer than CONFIG_SYS_CBSIZE)", clip(got), clip(string(want)))}
			}
		}
		if ok {
			c.buf = c.buf[:0]
			if err := c.conn.Write([]byte{'\r'}); err != nil {
				return err
			}
			_, err := c.until(ctx, c.opts.Timeout, "the end of the typed line", after("\r\n"))
			return err
		}
		// Discard the line (Ctrl-C: "<INTERRUPT>" and a new prompt), let
		// the unit settle, and type it again more slowly.
		if err := c.conn.Write([]byte{0x03}); err != nil {
			return err
		}
		if _, err := c.until(ctx, c.opts.Timeout, "the prompt after Ctrl-C", after("\n"+c.opts.Prompt)); err != nil {
			return err
		}
		if _, err := c.conn.Discard(ctx, 50*time.Millisecond, time.Second); err != nil {
			return err
		}
		chunk = max(1, chunk/2)
	}
	return lastErr
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", clip(s)) }

// markerStatus finds the marker line "TAG:N" in b (at its start or after
// a line feed) and returns where the line starts, where it ends (after its
// CR LF) and N. start is -1 until the whole line is there.
func markerStatus(b []byte, tag string) (start, end, status int) {
	for off := 0; off < len(b); {
		i := bytes.Index(b[off:], []byte(tag+":"))
		if i < 0 {
			return -1, 0, 0
		}
		i += off
		off = i + 1
		if i > 0 && b[i-1] != '\n' {
			continue
		}
		rest := b[i+len(tag)+1:]
		j := bytes.Index(rest, []byte("\r\n"))
		if j < 0 {
			return -1, 0, 0
		}
		n, err := strconv.Atoi(string(rest[:j]))
		if err != nil {
			continue
		}
		return i, i + len(tag) + 1 + j + 2, n
	}
	return -1, 0, 0
}

// finish reads the output of the command sent with tag until its marker
// and the prompt after it, and returns the output and the command's
// status.
func (c *Client) finish(ctx context.Context, cmd, tag string, wait time.Duration) (string, int, error) {
	var status int
	find := func(b []byte) int {
		i, _, st := markerStatus(b, tag)
		if i >= 0 {
			status = st
		}
		return i
	}
	out, err := c.until(ctx, wait, fmt.Sprintf("the end of %q", cmd), find)
	if err != nil {
		return out, 0, err
	}
	// The marker line, then the prompt.
	if _, err := c.until(ctx, c.opts.Timeout, fmt.Sprintf("the prompt after %q", cmd), after("\n"+c.opts.Prompt)); err != nil {
		return out, status, err
	}
	c.buf = c.buf[:0]
	return strings.TrimRight(out, "\r\n"), status, nil
}

// exec runs one command and returns its output; a status other than 0 is
// a *CommandError. wait bounds the whole command.
func (c *Client) exec(ctx context.Context, cmd string, wait time.Duration) (string, error) {
	tag, err := c.send(ctx, cmd)
	if err != nil {
		return "", err
	}
	out, status, err := c.finish(ctx, cmd, tag, wait+c.wire(100))
	if err != nil {
		return out, err
	}
	if status != 0 {
		return out, &CommandError{Cmd: cmd, Status: status, Output: out}
	}
	return out, nil
}

// Run runs one command at the prompt and returns what it printed. A
// command that fails is a *CommandError holding its output. A line with
// several commands (joined by ';') reports the status of the last.
func (c *Client) Run(ctx context.Context, cmd string) (string, error) {
	return c.exec(ctx, cmd, c.opts.Timeout)
}

// Env returns an environment variable's value (ErrNotDefined if unset).
func (c *Client) Env(ctx context.Context, name string) (string, error) {
	out, err := c.Run(ctx, "printenv "+name)
	var ce *CommandError
	if errors.As(err, &ce) && strings.Contains(out, "not defined") {
		return "", fmt.Errorf("uboot: %s: %w", name, ErrNotDefined)
	}
	if err != nil {
		return "", err
	}
	return ParseEnv(out, name)
}

// SetEnv sets an environment variable in RAM; SaveEnv stores it.
func (c *Client) SetEnv(ctx context.Context, name, value string) error {
	if strings.ContainsAny(name, " ;=\"'$") || strings.ContainsAny(value, "\"\\$") {
		return fmt.Errorf("uboot: setenv %s %q: name or value holds characters the shell would interpret", name, value)
	}
	_, err := c.Run(ctx, fmt.Sprintf("setenv %s \"%s\"", name, value))
	return err
}

// SaveEnv writes the environment to its storage (saveenv).
func (c *Client) SaveEnv(ctx context.Context) error {
	out, err := c.exec(ctx, "saveenv", c.opts.Timeout+2*time.Second)
	if err == nil && !strings.Contains(out, "OK") {
		return &ProtocolError{Op: "saveenv", Err: ErrUnexpected, Detail: fmt.Sprintf("no OK in %q", clip(out))}
	}
	return err
}

// CRC32 returns the CRC-32 of n bytes of RAM at addr, as U-Boot computes it.
func (c *Client) CRC32(ctx context.Context, addr uint32, n int) (uint32, error) {
	cmd := fmt.Sprintf("crc32 %x %x", addr, n)
	out, err := c.exec(ctx, cmd, c.opts.Timeout+time.Duration(n)*time.Second/(20<<20))
	if err != nil {
		return 0, err
	}
	r, err := ParseCRC32(out)
	if err != nil {
		return 0, &ProtocolError{Op: cmd, Err: err}
	}
	if n > 0 && (r.Start != uint64(addr) || r.End != uint64(addr)+uint64(n)-1) {
		return 0, &ProtocolError{Op: cmd, Err: ErrUnexpected, Detail: fmt.Sprintf("it covered %#x...%#x", r.Start, r.End)}
	}
	return r.CRC, nil
}

// Load sends data into RAM at addr with loady, then checks the size
// U-Boot reports and the CRC-32 of what landed in RAM. With a load rate
// (SetLoadBaud) it follows cmd/load.c, do_load_serial_bin: U-Boot prints
// "## Switch baudrate to B bps and press ENTER ...", switches its UART
// 100 ms later and waits for a CR; after the transfer it prints "...
// press ESC ..." at B, switches back and waits for an ESC.
func (c *Client) Load(ctx context.Context, addr uint32, data []byte, p bootloader.Progress) error {
	fast := c.loadBaud != 0 && c.loadBaud != c.opts.Baud
	var bs bootloader.BaudSetter
	if fast {
		var ok bool
		if bs, ok = c.port.(bootloader.BaudSetter); !ok {
			return &RateError{Baud: c.loadBaud, Err: errors.New("the port cannot change its rate")}
		}
	}
	cmd := fmt.Sprintf("loady %x", addr)
	if fast {
		cmd = fmt.Sprintf("loady %x %d", addr, c.loadBaud)
	}
	tag, err := c.send(ctx, cmd)
	if err != nil {
		return err
	}
	ready := "## Ready for binary (ymodem) download"
	first := ready
	if fast {
		first = fmt.Sprintf("## Switch baudrate to %d bps and press ENTER ...", c.loadBaud)
	}
	failed := false
	out, err := c.until(ctx, c.opts.Timeout, fmt.Sprintf("loady's %q line", first), func(b []byte) int {
		i := bytes.Index(b, []byte(first))
		if i < 0 {
			if j, _, _ := markerStatus(b, tag); j >= 0 {
				failed = true // the command ended without a transfer: stop waiting
				return len(b)
			}
			return -1
		}
		if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
			return i + j + 1
		}
		return -1
	})
	if err != nil {
		return fmt.Errorf("uboot: %s: %w", cmd, err)
	}
	if failed {
		_, _, st := markerStatus([]byte(out), tag)
		body, _, _ := strings.Cut(out, tag)
		return &CommandError{Cmd: cmd, Status: st, Output: strings.TrimSpace(body)}
	}
	if fast {
		if err := c.toLoadRate(ctx, bs, cmd, ready); err != nil {
			return err
		}
	}
	yo := c.opts.YMODEM
	yo.Progress = p
	var status int
	serr := ymodem.Send(ctx, &bufPort{logPort{c}}, []ymodem.File{{Name: "unbrick.bin", Data: data}}, yo)
	// Whatever happened, loady prints its total and returns to the prompt
	// (after its own 2 s timeouts if the transfer broke off).
	wait := c.opts.Timeout + 5*time.Second
	if serr != nil {
		wait = c.opts.Timeout // the sender cancelled: loady ends at once, if the unit still runs
	}
	total := ""
	if fast {
		total, err = c.toConsoleRate(ctx, bs, cmd, wait)
		if err != nil {
			if serr != nil {
				err = serr
			}
			return &RateError{Baud: c.loadBaud, Stuck: true, Err: err}
		}
	}
	out, status, err = c.finish(ctx, cmd, tag, wait)
	if serr != nil {
		err = fmt.Errorf("uboot: %s: YMODEM transfer of %d bytes: %w", cmd, len(data), serr)
		if fast {
			return &RateError{Baud: c.loadBaud, Err: err}
		}
		return err
	}
	if err != nil {
		return fmt.Errorf("uboot: %s after the transfer: %w", cmd, err)
	}
	if status != 0 {
		return &CommandError{Cmd: cmd, Status: status, Output: out}
	}
	n, err := ParseTotalSize(total + out)
	if err != nil {
		return &ProtocolError{Op: cmd, Err: err}
	}
	if n != int64(len(data)) {
		return &ProtocolError{Op: cmd, Err: ErrUnexpected, Detail: fmt.Sprintf("U-Boot received %d bytes, %d were sent", n, len(data))}
	}
	got, err := c.CRC32(ctx, addr, len(data))
	if err != nil {
		return err
	}
	if want := crc32.ChecksumIEEE(data); got != want {
		return &VerifyError{Where: "RAM after loady", Offset: int64(addr), Len: len(data), Want: want, Got: got}
	}
	return nil
}

// rateSettle is how long the client waits after U-Boot announces a rate
// change before it speaks at the new rate: do_load_serial_bin waits 50 ms,
// switches the UART, and waits 50 ms more.
const rateSettle = 150 * time.Millisecond

// toLoadRate switches the port to the load rate once U-Boot has announced
// it, and presses Enter until loady's ready line shows at that rate.
func (c *Client) toLoadRate(ctx context.Context, bs bootloader.BaudSetter, cmd, ready string) error {
	if err := bootloader.Sleep(ctx, rateSettle); err != nil {
		return err
	}
	if err := bs.SetBaud(c.loadBaud); err != nil {
		return &RateError{Baud: c.loadBaud, Stuck: true, Err: fmt.Errorf("set the port's rate: %w", err)}
	}
	c.buf = c.buf[:0] // what arrived while the rates changed is noise
	var last error
	for range 3 {
		if _, err := c.port.Write([]byte{'\r'}); err != nil {
			return err
		}
		_, err := c.until(ctx, time.Second+c.wire(80), fmt.Sprintf("loady's %q line at %d bps", ready, c.loadBaud), after(ready))
		if err == nil {
			_, err = c.until(ctx, time.Second+c.wire(80), "the end of loady's ready line", after("\n"))
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		last = err
	}
	// U-Boot never took the CR: it reads for ever at a rate the host does
	// not meet. Back to the console rate, for whatever follows the reset.
	_ = bs.SetBaud(c.opts.Baud)
	return &RateError{Baud: c.loadBaud, Stuck: true, Err: last}
}

// toConsoleRate reads, at the load rate, loady's output up to U-Boot's
// "press ESC" line, then switches the port back to the console rate and
// sends ESC. It returns the output before that line.
func (c *Client) toConsoleRate(ctx context.Context, bs bootloader.BaudSetter, cmd string, wait time.Duration) (string, error) {
	back := fmt.Sprintf("## Switch baudrate to %d bps and press ESC ...", c.opts.Baud)
	out, err := c.until(ctx, wait, fmt.Sprintf("loady's %q line", back), after(back))
	if err != nil {
		_ = bs.SetBaud(c.opts.Baud)
		return out, err
	}
	if err := bootloader.Sleep(ctx, rateSettle); err != nil {
		return out, err
	}
	if err := bs.SetBaud(c.opts.Baud); err != nil {
		return out, fmt.Errorf("set the port's rate back to %d: %w", c.opts.Baud, err)
	}
	c.buf = c.buf[:0]
	if _, err := c.port.Write([]byte{0x1B}); err != nil {
		return out, err
	}
	return out, nil
}

// Boot runs bootcmd ("boot") and returns once the command is under way;
// the output that follows belongs to the booting system.
func (c *Client) Boot(ctx context.Context) error { return c.BootWith(ctx, "boot") }

// BootWith types a boot command line ("bootm 40200000" for an image in
// RAM) and returns once it is under way: its echo checked and Enter sent.
// Whatever follows belongs to the booted program.
func (c *Client) BootWith(ctx context.Context, line string) error {
	if strings.ContainsAny(line, "\r\n\x03") || len(line) > c.opts.LineMax {
		return fmt.Errorf("uboot: boot command %q holds a line break or is longer than the board's line (%d)", line, c.opts.LineMax)
	}
	return c.typeLine(ctx, line)
}

// BootSlot makes slot the A/B slot U-Boot boots (boot_slot) with a fresh
// bootcount, saves the environment and boots.
func (c *Client) BootSlot(ctx context.Context, slot string) error {
	if err := c.SelectSlot(ctx, slot); err != nil {
		return err
	}
	return c.Boot(ctx)
}

// SelectSlot sets boot_slot and bootcount=0 and saves the environment.
func (c *Client) SelectSlot(ctx context.Context, slot string) error {
	if err := c.SetEnv(ctx, "boot_slot", slot); err != nil {
		return err
	}
	if err := c.SetEnv(ctx, "bootcount", "0"); err != nil {
		return err
	}
	return c.SaveEnv(ctx)
}
