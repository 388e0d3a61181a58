package jobs

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/unbrick/unbrick/recipes"
)

// Options are a plan's driver options by name, as the recipe writes them.
// A plan compiled from a recipe holds only options its driver declares,
// with values of the declared type and range (CheckOptions).
type Options map[string]string

// duration returns a duration option, or 0 when it is not set (or, in a
// plan built by hand, not a duration).
func (o Options) duration(name string) time.Duration {
	d, err := time.ParseDuration(o[name])
	if err != nil {
		return 0
	}
	return d
}

// OptionType is the type of an option's value.
type OptionType string

// Option types.
const (
	TypeDuration OptionType = "duration" // 2s, 500ms, 1m30s
	TypeInteger  OptionType = "integer"  // decimal or 0x hexadecimal
	TypeBoolean  OptionType = "boolean"  // true or false
	TypeChoice   OptionType = "choice"   // one of Choices
	TypeAddress  OptionType = "address"  // hexadecimal, with or without 0x, not zero
	TypeHex      OptionType = "hex"      // hexadecimal, with or without 0x, within Min..Max
	TypeText     OptionType = "text"     // any text on one line
)

// Option is one option a driver (or the runner) takes: its name, type,
// range, default and what it does.
type Option struct {
	Name     string
	Type     OptionType
	Min, Max int64    // integer: the range; duration: in nanoseconds (0: no bound)
	Multiple int64    // integer: must be a multiple of it (0: any)
	Choices  []string // choice
	Default  string   // as a recipe would write it; "" when the default depends on the unit
	Doc      string
}

// DriverOptions is what a protocol driver declares: the options it takes
// and the serial settings it can honour.
type DriverOptions struct {
	Protocol string
	Options  []Option
	// Flow lists the serial flow control settings the driver's port
	// honours besides none.
	Flow []string
}

// runnerOptions are options every recipe may set, whatever its protocol.
var runnerOptions = []Option{
	{Name: "observe", Type: TypeDuration, Min: int64(10 * time.Millisecond), Max: int64(10 * time.Minute), Default: "2s",
		Doc: "how long the console is read at power-on to diagnose a bricked unit (when the recipe has diagnosis rules)"},
	{Name: "step_timeout", Type: TypeDuration, Min: int64(time.Second), Max: int64(2 * time.Hour), Default: "10m",
		Doc: "how long one try of one step may take, besides an expect or wait step's own window"},
}

// declared is every driver's declaration, one file each (options_*.go).
var declared = []DriverOptions{stm32Options, espOptions, avrOptions, ubootOptions}

// Declared returns what the driver of protocol declares, with the options
// every recipe may set appended.
func Declared(protocol string) (DriverOptions, bool) {
	for _, d := range declared {
		if d.Protocol == protocol {
			d.Options = append(slices.Clone(d.Options), runnerOptions...)
			return d, true
		}
	}
	return DriverOptions{}, false
}

func (d DriverOptions) option(name string) (Option, bool) {
	for _, o := range d.Options {
		if o.Name == name {
			return o, true
		}
	}
	return Option{}, false
}

func (d DriverOptions) names() []string {
	var n []string
	for _, o := range d.Options {
		n = append(n, o.Name)
	}
	return n
}

// Check returns what is wrong with v as a value of o, and a hint; "" if it
// is right.
func (o Option) Check(v string) (problem, hint string) {
	switch o.Type {
	case TypeDuration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return "is not a duration", "write a time such as 500ms, 2s or 1m30s"
		}
		if (o.Min != 0 && int64(d) < o.Min) || (o.Max != 0 && int64(d) > o.Max) {
			return fmt.Sprintf("is outside %v..%v", time.Duration(o.Min), time.Duration(o.Max)), "choose a time in that range"
		}
	case TypeInteger:
		n, err := strconv.ParseInt(v, 0, 64)
		if err != nil {
			return "is not a whole number", fmt.Sprintf("write a number in %d..%d", o.Min, o.Max)
		}
		if n < o.Min || (o.Max != 0 && n > o.Max) {
			return fmt.Sprintf("is outside %d..%d", o.Min, o.Max), "choose a number in that range"
		}
		if o.Multiple > 0 && n%o.Multiple != 0 {
			return fmt.Sprintf("is not a multiple of %d", o.Multiple), fmt.Sprintf("round it to a multiple of %d", o.Multiple)
		}
	case TypeBoolean:
		if v != "true" && v != "false" {
			return "is not true or false", "write true or false"
		}
	case TypeChoice:
		if !slices.Contains(o.Choices, v) {
			return "is not one of " + strings.Join(o.Choices, ", "), "use one of " + strings.Join(o.Choices, ", ")
		}
	case TypeAddress:
		a, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(v, "0x"), "0X"), 16, 32)
		if err != nil || a == 0 {
			return "is not a hexadecimal address", "write a 32-bit address such as 0x82000000"
		}
	case TypeHex:
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(v, "0x"), "0X"), 16, 63)
		if err != nil {
			return "is not a hexadecimal number", fmt.Sprintf("write a number such as 0x%X", o.Max)
		}
		if int64(n) < o.Min || (o.Max != 0 && int64(n) > o.Max) {
			return fmt.Sprintf("is outside 0x%X..0x%X", o.Min, o.Max), "choose a number in that range"
		}
	case TypeText:
		if strings.ContainsAny(v, "\r\n") {
			return "spans more than one line", "write it on one line"
		}
	}
	return "", ""
}

// Range says the option's type and range for a person.
func (o Option) Range() string {
	switch o.Type {
	case TypeDuration:
		return fmt.Sprintf("duration %v..%v", time.Duration(o.Min), time.Duration(o.Max))
	case TypeInteger:
		s := fmt.Sprintf("integer %d..%d", o.Min, o.Max)
		if o.Multiple > 0 {
			s += fmt.Sprintf(", a multiple of %d", o.Multiple)
		}
		return s
	case TypeChoice:
		return strings.Join(o.Choices, " | ")
	case TypeBoolean:
		return "true | false"
	case TypeHex:
		return fmt.Sprintf("hexadecimal 0x%X..0x%X", o.Min, o.Max)
	}
	return string(o.Type)
}

// CheckOptions checks a recipe's driver options and serial settings
// against what its protocol's driver declares: an unknown option, a value
// of the wrong type or out of range, or a serial flow control the driver
// cannot honour is an error at its file:line:col with a hint.
func CheckOptions(r *recipes.Recipe) []error {
	d, ok := Declared(r.Protocol)
	if !ok {
		return nil // an unknown protocol is the recipe's own error
	}
	var errs []error
	fail := func(p recipes.Pos, hint, format string, args ...any) {
		errs = append(errs, &recipes.Error{Pos: p, Msg: fmt.Sprintf(format, args...), Hint: hint})
	}
	see := "unbrick recipe options " + r.Protocol + " lists them"
	names := make([]string, 0, len(r.Options))
	for k := range r.Options {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(r.OptionKeys[a].Line, r.OptionKeys[b].Line), cmp.Compare(a, b))
	})
	for _, k := range names {
		o, ok := d.option(k)
		if !ok {
			hint := fmt.Sprintf("the %s driver takes %s (%s)", r.Protocol, strings.Join(d.names(), ", "), see)
			if m := recipes.Closest(k, d.names()); m != "" {
				hint = fmt.Sprintf("did you mean %q? ", m) + hint
			}
			fail(r.OptionKeys[k], hint, "unknown option %q for protocol %s", k, r.Protocol)
			continue
		}
		if problem, hint := o.Check(r.Options[k]); problem != "" {
			fail(r.OptionValues[k], hint+" ("+see+")", "option %s %q %s (%s)", k, r.Options[k], problem, o.Doc)
		}
	}
	if f := r.Serial.Flow; f != "" && f != "none" && !slices.Contains(d.Flow, f) {
		p := r.Serial.FlowPos
		if p.Line == 0 {
			p = r.Serial.Pos
		}
		fail(p, "remove flow: (or write flow: none), and wire the unit so it needs no hardware handshake",
			"serial flow %q: the %s driver cannot honour it (it opens the port without hardware flow control)", f, r.Protocol)
	}
	return errs
}
