// Command unbrick is the bench station: it recovers and flashes embedded
// devices, dozens at once, on a real bench or on the virtual bench.
//
//	unbrick demo   --units N --listen ADDR --data DIR   the virtual bench, every unit recovered
//	unbrick serve  --bench FILE --data DIR              the station for real hardware
//	unbrick flash  --port PATH --protocol P IMAGE       one unit on one port, like stm32flash or esptool
//	unbrick sim    --model M --link PATH                one device model on a pseudo-terminal
//	unbrick recipe check FILE...                        check recipe files before release
//	unbrick recipe test FILE                            run a recipe against its model on the virtual bench
//	unbrick records --data DIR                          list recovery records
//	unbrick user add|passwd|remove|list NAME            accounts of the page (password asked, never a flag)
//	unbrick bench  --units N [--json FILE]              the station measured against models in another process
//	unbrick records export --format csv|json [--since T] [--until T]   streamed; records import FILE loads it back
//	unbrick records backup FILE                         online backup while the station runs
//	unbrick records generate --attempts N --days D      plausible history for benchmarks and demos
//	unbrick records bench                               time every dashboard query
//	unbrick records prune --console-days N              console log retention (outcomes are kept)
//
// main is thin: run does the work, so the tests can call it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "unbrick:", err)
		os.Exit(1)
	}
}

// exitError ends the program with a status after its message was printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"sim":     {"run one device model on a pseudo-terminal for third-party tools", runSim},
		"demo":    {"run the station on a virtual bench of bricked units", runDemo},
		"flash":   {"flash one unit on one port and verify it", runFlash},
		"serve":   {"run the station on a real bench described by a bench file", runServe},
		"records": {"list recovery records from the database", runRecords},
		"recipe":  {"check recipe files, or test one on the virtual bench", runRecipe},
		"soak":    {"run the station for a while on a faulty virtual bench, then kill it, and check nothing is lost", runSoak},
		"user":    {"add, change or remove the accounts of the station's page", runUser},
		"bench":   {"measure the station against device models in another process, side by side with the peer tools", runBench},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: unbrick COMMAND [flags]\n\ncommands:")
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'unbrick COMMAND -h' for a command's flags.")
}

// run runs the command line args and returns its error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		usage(stderr)
		return fmt.Errorf("unknown command %q", args[0])
	}
	err := c.run(ctx, args[1:], stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// newFlags returns a flag set that prints its errors and usage to stderr.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("unbrick "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: unbrick %s %s\n\nflags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// noArgs fails if fs has positional arguments left.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return nil
}
