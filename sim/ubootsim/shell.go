package ubootsim

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/unbrick/unbrick/sim"
)

// uboot is one run of the firmware: U-Boot's state in RAM.
type uboot struct {
	m      *Model
	s      *sim.Session
	env    map[string]string
	locals map[string]string // hush shell variables (name=value)
	last   string            // the last command line, repeated by an empty line
	status int               // $?: the status of the last command that ran
	sf     bool              // sf probe succeeded
	ram    *sparse
	// scanned holds the block interfaces scanned (scsi scan, usb start);
	// cur their current devices; protected the CFI sectors protected.
	scanned   map[string]bool
	cur       map[string]int
	protected []bool
	rxq       []byte // typed characters waiting in the receive FIFO
}

// Control flow out of deep call chains: the session ended, or the unit
// resets (the reset command, a crash, a kernel panic, the watchdog).
type (
	halted    struct{}
	resetting struct{}
)

func (u *uboot) run() {
	defer func() {
		switch r := recover(); r.(type) {
		case nil, halted:
		case resetting:
			u.s.Reset()
		default:
			panic(r)
		}
	}()
	u.m.mu.Lock()
	u.ram = u.m.ram
	u.m.mu.Unlock()
	u.scanned, u.cur = map[string]bool{}, map[string]int{}
	u.protected = make([]bool, CFISize/CFISector)
	u.boot()
}

// out prints text, turning \n into \r\n as U-Boot's serial driver does.
func (u *uboot) out(format string, args ...any) {
	s := format
	if len(args) > 0 {
		s = fmt.Sprintf(format, args...)
	}
	if u.s.Print(strings.ReplaceAll(s, "\n", "\r\n")) != nil {
		panic(halted{})
	}
}

func (u *uboot) putc(b byte) {
	if _, err := u.s.Write([]byte{b}); err != nil {
		panic(halted{})
	}
}

// getc reads one byte within d (negative: wait for ever). ok is false on
// timeout.
func (u *uboot) getc(d time.Duration) (byte, bool) {
	var b [1]byte
	var err error
	if d < 0 {
		_, err = u.s.Read(b[:])
	} else {
		_, err = u.s.ReadTimeout(b[:], d)
	}
	switch {
	case err == nil:
		return b[0], true
	case errors.Is(err, sim.ErrReadTimeout):
		return 0, false
	}
	panic(halted{})
}

// wait waits d of firmware time.
func (u *uboot) wait(d time.Duration) {
	if u.s.Wait(d) != nil {
		panic(halted{})
	}
}

// busy models the unit working for d (paced lines only).
func (u *uboot) busy(d time.Duration) {
	if u.s.Busy(d) != nil {
		panic(halted{})
	}
}

func (u *uboot) reset() {
	u.out("resetting ...\n")
	panic(resetting{})
}

// boot runs U-Boot from reset: banner, environment, bootcount, autoboot,
// then the command line.
func (u *uboot) boot() {
	m := u.m
	u.out("\n\n%s\n\n", Version)
	u.out("CPU:   Freescale i.MX6ULL rev1.1 792 MHz (running at 396 MHz)\n")
	u.out("Model: %s\n", m.opts.board)
	u.out("DRAM:  %d MiB\n", RAMSize>>20)
	u.out("Core:  38 devices, 20 uclasses, devicetree: separate\n")
	u.out("MMC:   mmc@2190000: 0\n")
	u.out("Loading Environment from MMC... ")
	env, err := m.loadEnv()
	if err != nil {
		u.out("*** Warning - bad CRC, using default environment\n\n")
		env = defaultEnv(m.opts.board, m.layout, m.bootDelaySeconds())
	} else {
		u.out("OK\n")
	}
	u.env = env
	if _, ok := u.env["serial#"]; !ok {
		u.env["serial#"] = m.opts.Serial // board_late_init: from the OTP fuses
	}
	u.out("In:    serial\nOut:   serial\nErr:   serial\n")
	u.out("Net:   No ethernet found.\n")

	// bootdelay_process with CONFIG_BOOTCOUNT_LIMIT and CONFIG_BOOTCOUNT_ENV.
	upgrade := u.env["upgrade_available"] == "1"
	count := 0
	if upgrade {
		count, _ = strconv.Atoi(u.env["bootcount"])
	}
	count++
	u.env["bootcount"] = strconv.Itoa(count)
	if upgrade {
		u.saveenv()
	}
	cmd := "bootcmd"
	if limit, _ := strconv.Atoi(u.env["bootlimit"]); limit > 0 && count > limit {
		u.out("Warning: Bootlimit (%d) exceeded. Using altbootcmd.\n", limit)
		cmd = "altbootcmd"
	}
	if !u.abortboot() {
		m.count(func(s *Stats) {
			s.Autoboots++
			if cmd == "altbootcmd" {
				s.AltBoots++
			}
		})
		u.runLine(u.env[cmd])
	}
	u.cli()
}

// abortboot runs the autoboot countdown and reports whether a key stopped
// it (the key is consumed). It returns true without a countdown when
// autoboot is off.
func (u *uboot) abortboot() bool {
	delay := time.Duration(u.m.opts.BootDelay)
	secs := 0
	if delay == 0 {
		n, err := strconv.Atoi(u.env["bootdelay"])
		if err != nil {
			n = 3
		}
		delay = time.Duration(n) * time.Second
	}
	if delay < 0 {
		return true
	}
	// common/autoboot.c, autoboot_command: bootdelay=-2 runs bootcmd at
	// once, without looking at the console (no key can stop it).
	if u.env["bootdelay"] == "-2" {
		return false
	}
	secs = int((delay + time.Second - 1) / time.Second)
	if key := u.m.opts.StopString; key != "" {
		return u.abortbootKeyed(delay, secs, key)
	}
	u.out("Hit any key to stop autoboot: %2d ", secs)
	left := delay
	for {
		step := min(left, time.Second)
		if _, ok := u.getc(max(step, time.Millisecond)); ok {
			u.out("\b\b\b%2d \n", 0)
			return true
		}
		left -= step
		if left <= 0 {
			break
		}
		secs--
		u.out("\b\b\b%2d ", secs)
	}
	u.out("\b\b\b%2d \n", 0)
	return false
}

// abortbootKeyed is common/autoboot.c's abortboot_key_sequence with a
// plain stop string: it prints CONFIG_AUTOBOOT_PROMPT's default and stops
// only when the last characters typed match the stop string; anything
// else is read and ignored.
func (u *uboot) abortbootKeyed(delay time.Duration, secs int, key string) bool {
	u.out("Autoboot in %d seconds\n", secs)
	var typed []byte
	left := delay
	for left > 0 {
		step := min(left, 10*time.Millisecond)
		if c, ok := u.getc(step); ok {
			typed = append(typed, c)
			if len(typed) > len(key) {
				typed = typed[len(typed)-len(key):]
			}
			if string(typed) == key {
				return true
			}
			continue
		}
		left -= step
	}
	return false
}

// cli is U-Boot's command loop.
func (u *uboot) cli() {
	for {
		if u.m.opts.Prompt != "" {
			u.out("%s", u.m.opts.Prompt)
		} else {
			u.out(Prompt)
		}
		line, ok := u.readLine()
		if !ok {
			continue
		}
		if strings.TrimSpace(line) == "" {
			if !repeatable(u.last) {
				continue
			}
			line = u.last
		}
		u.last = line
		u.runLine(line)
	}
}

// readLine reads a command line with echo and simple editing. ok is false
// when Ctrl-C discarded it.
func (u *uboot) readLine() (string, bool) {
	var buf []byte
	for {
		c := u.lineChar()
		switch {
		case c == '\r' || c == '\n':
			u.out("\n")
			return string(buf), true
		case c == 0x03:
			u.out("<INTERRUPT>\n")
			return "", false
		case c == 0x08 || c == 0x7F:
			if len(buf) > 0 {
				buf = buf[:len(buf)-1]
				u.out("\b \b")
			}
		case c == 0x15: // Ctrl-U: erase the line
			u.out("%s", strings.Repeat("\b \b", len(buf)))
			buf = buf[:0]
		case c == '\t':
			c = ' '
			fallthrough
		case c >= 0x20 && c < 0x7F:
			max := u.m.opts.LineMax
			if max == 0 {
				max = 1024
			}
			if len(buf) < max { // CONFIG_SYS_CBSIZE characters (cread_add_char beeps once eol_num > len-1)
				buf = append(buf, c)
				u.putc(c)
			} else {
				u.putc('\a') // cli_readline.c: getcmd_cbeep() on a full line
			}
		}
	}
}

// lineChar takes the next typed character. With Options.RxFIFO it models a
// polled UART: whatever arrived while the previous character was handled
// waits in a FIFO of that depth, and the rest is lost.
func (u *uboot) lineChar() byte {
	if len(u.rxq) == 0 {
		c, _ := u.getc(-1)
		u.rxq = append(u.rxq, c)
	}
	if depth := u.m.opts.RxFIFO; depth > 0 {
		var buf [256]byte
		for {
			n, err := u.s.ReadTimeout(buf[:], 0)
			if n == 0 || err != nil {
				if err != nil && !errors.Is(err, sim.ErrReadTimeout) {
					panic(halted{})
				}
				break
			}
			for _, b := range buf[:n] {
				if len(u.rxq)-1 < depth {
					u.rxq = append(u.rxq, b)
				} else {
					u.m.count(func(s *Stats) { s.RxDropped++ })
				}
			}
		}
	}
	c := u.rxq[0]
	u.rxq = u.rxq[1:]
	return c
}

// repeatable reports whether an empty line repeats line (commands whose
// U_BOOT_CMD repeat flag is set).
func repeatable(line string) bool {
	f := strings.Fields(line)
	if len(f) == 0 || strings.ContainsAny(line, ";&|") {
		return false
	}
	name, _, _ := strings.Cut(f[0], ".")
	switch name {
	case "md", "echo", "printenv", "crc32", "help", "version":
		return true
	case "mmc", "sf":
		return len(f) > 1 && (f[1] == "read" || f[1] == "info")
	}
	return false
}

// A command list: commands joined by ';', '&&' or '||'.
type step struct {
	op   string // how it joins the one before: ";", "&&" or "||"
	text string // unexpanded
}

// split cuts a command line at ';', '&&' and '||' outside quotes.
func split(line string) []step {
	var steps []step
	op := ";"
	start := 0
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '\\' && quote == '"' {
				i++
			}
		case c == '\\':
			i++
		case c == '\'' || c == '"':
			quote = c
		case c == ';':
			steps = append(steps, step{op, line[start:i]})
			op, start = ";", i+1
		case (c == '&' || c == '|') && i+1 < len(line) && line[i+1] == c:
			steps = append(steps, step{op, line[start:i]})
			op, start = string([]byte{c, c}), i+2
			i++
		}
	}
	return append(steps, step{op, line[start:]})
}

// words splits one command into arguments, expanding $name and ${name}
// outside single quotes and removing quotes and backslashes.
func (u *uboot) words(s string) []string {
	var args []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == '\'' && quote == 0, c == '"' && quote == 0:
			quote = c
			inWord = true
		case c == '"' && quote == '"':
			quote = 0
		case c == '$' && i+1 < len(s):
			name, n := varName(s[i+1:])
			if n == 0 {
				cur.WriteByte(c)
				inWord = true
				continue
			}
			cur.WriteString(u.lookup(name))
			inWord = true
			i += n
		case (c == ' ' || c == '\t') && quote == 0:
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args
}

// varName reads a variable reference after '$': {name} or name. It
// returns the name and how many bytes it took.
func varName(s string) (string, int) {
	if s[0] == '?' {
		return "?", 1 // hush's $?: the last command's status
	}
	if s[0] == '{' {
		if j := strings.IndexByte(s, '}'); j > 1 {
			return s[1:j], j + 1
		}
		return "", 0
	}
	n := 0
	for n < len(s) && (s[n] == '_' || s[n] >= '0' && s[n] <= '9' || s[n] >= 'a' && s[n] <= 'z' || s[n] >= 'A' && s[n] <= 'Z') {
		n++
	}
	return s[:n], n
}

func (u *uboot) lookup(name string) string {
	if name == "?" {
		return strconv.Itoa(u.status)
	}
	if v, ok := u.locals[name]; ok {
		return v
	}
	return u.env[name]
}

// runLine runs a command line and returns the status of the last command
// that ran, by the rules of U-Boot's hush (common/cli_hush.c,
// run_list_real), which are not POSIX's: a failure after ';' does not stop
// the rest, but a command that fails before '&&' (or succeeds before '||')
// skips every following command up to and including the next one that
// ends in ';'. So "false && echo A || echo B" prints nothing, as real
// U-Boot 2023.01 does (the differential test holds this). $? is the
// status of the last command that ran.
func (u *uboot) runLine(line string) int {
	steps := split(line)
	skipping := false
	for i, st := range steps {
		// The operator after this command: how it joins the next one.
		next := ";"
		if i+1 < len(steps) {
			next = steps[i+1].op
		}
		if skipping {
			if next == ";" {
				skipping = false
			}
			continue
		}
		args := u.words(st.text)
		if len(args) == 0 {
			continue
		}
		if name, val, ok := strings.Cut(args[0], "="); ok && len(args) == 1 && isName(name) {
			u.locals[name] = val
			u.status = 0
		} else {
			u.status = u.command(args)
		}
		if (u.status == 0 && next == "||") || (u.status != 0 && next == "&&") {
			skipping = true
		}
	}
	return u.status
}

func isName(s string) bool {
	_, n := varName(s)
	return s != "" && n == len(s) && !(s[0] >= '0' && s[0] <= '9')
}
