package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/unbrick/unbrick/db"
	"github.com/unbrick/unbrick/web"
)

// runUser manages the accounts of the station's page. Passwords are read
// from the terminal without echo (asked twice), or as one line from
// standard input when it is not a terminal; never from the command line,
// where `ps` and unit files would show them.
func runUser(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return userCommand(ctx, args, os.Stdin, stdout, stderr)
}

const userSynopsis = `add|passwd|remove|list [--data DIR] [--role ROLE] NAME

  unbrick user add --role supervisor ada     create an account; the password is asked for
  unbrick user passwd ada                    change its password
  unbrick user remove ada                    delete it
  unbrick user list                          list the accounts and their roles

Roles: operator (runs jobs; needs an account only with --operator-login),
supervisor (also releases quarantined slots, cancels other people's jobs,
changes settings), engineer (recipes and images).`

func userCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "usage: unbrick user %s\n", userSynopsis)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return flag.ErrHelp
		}
		return fmt.Errorf("say what to do: add, passwd, remove or list")
	}
	verb := args[0]
	fs := newFlags("user "+verb, userSynopsis, stderr)
	data := fs.String("data", "./var", "the data directory holding unbrick.db (the station's --data)")
	role := fs.String("role", web.RoleOperator, "the account's role: operator, supervisor or engineer (add)")
	password := fs.String("password", "", "refused: a password on the command line shows in ps; type it when asked, or pipe it in")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *password != "" {
		return fmt.Errorf("--password is refused: a password on the command line is visible to every user in ps and stays in the shell history; run the command without it and type the password when asked, or pipe it on standard input")
	}
	var name string
	switch {
	case verb == "list" && fs.NArg() == 0:
	case verb != "list" && fs.NArg() == 1:
		name = strings.TrimSpace(fs.Arg(0))
		if name == "" || len(name) > 64 || strings.ContainsAny(name, " \t\r\n") {
			return fmt.Errorf("account name %q: use 1 to 64 characters without spaces", fs.Arg(0))
		}
	default:
		fs.Usage()
		return fmt.Errorf("user %s: want %s; flags go before the name", verb, map[bool]string{true: "no arguments", false: "one account name"}[verb == "list"])
	}
	s, err := db.Open(filepath.Join(*data, "unbrick.db"))
	if err != nil {
		return err
	}
	defer s.Close()
	in := bufio.NewReader(stdin)
	switch verb {
	case "add":
		ok := false
		for _, r := range db.Roles {
			ok = ok || r == *role
		}
		if !ok {
			return fmt.Errorf("--role %q: use one of %s", *role, strings.Join(db.Roles, ", "))
		}
		if _, err := s.User(ctx, name); err == nil {
			return fmt.Errorf("account %s exists already; use `unbrick user passwd %s` to change its password", name, name)
		}
		hash, err := askPassword(stdin, in, stderr, name)
		if err != nil {
			return err
		}
		if err := s.AddUser(ctx, db.User{Name: name, Role: *role, Hash: hash}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "account %s (%s) added to %s\n", name, *role, s.Path())
	case "passwd":
		if _, err := s.User(ctx, name); err != nil {
			return fmt.Errorf("account %s does not exist; add it with `unbrick user add --role ROLE %s`", name, name)
		}
		hash, err := askPassword(stdin, in, stderr, name)
		if err != nil {
			return err
		}
		if err := s.SetUserHash(ctx, name, hash); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password of %s changed; sessions already open end when they expire or the station restarts\n", name)
	case "remove":
		if err := s.RemoveUser(ctx, name); err != nil {
			if errors.Is(err, db.ErrNoUser) {
				return fmt.Errorf("account %s does not exist (see `unbrick user list`)", name)
			}
			return err
		}
		fmt.Fprintf(stdout, "account %s removed\n", name)
	case "list":
		us, err := s.Users(ctx)
		if err != nil {
			return err
		}
		if len(us) == 0 {
			fmt.Fprintln(stdout, "no accounts; add one with `unbrick user add --role supervisor NAME`")
		}
		for _, u := range us {
			fmt.Fprintf(stdout, "%-20s %-10s changed %s\n", u.Name, u.Role, u.Updated.Format("2006-01-02 15:04"))
		}
	default:
		return fmt.Errorf("unknown user command %q: use add, passwd, remove or list", verb)
	}
	return nil
}

// askPassword reads a new password and returns its hash: from a terminal
// without echo, twice; otherwise one line from in.
func askPassword(stdin io.Reader, in *bufio.Reader, stderr io.Writer, name string) (string, error) {
	var pw string
	if f, ok := stdin.(*os.File); ok && isTerminal(f) {
		a, err := readNoEcho(f, in, stderr, fmt.Sprintf("password for %s: ", name))
		if err != nil {
			return "", err
		}
		b, err := readNoEcho(f, in, stderr, "again: ")
		if err != nil {
			return "", err
		}
		if a != b {
			return "", fmt.Errorf("the two passwords differ; nothing was changed")
		}
		pw = a
	} else {
		line, err := in.ReadString('\n')
		if err != nil && (err != io.EOF || line == "") {
			return "", fmt.Errorf("reading the password from standard input: %v (pipe it in, one line)", err)
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	return web.HashPassword(pw)
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// readNoEcho reads one line from the terminal f with its echo off.
func readNoEcho(f *os.File, in *bufio.Reader, stderr io.Writer, prompt string) (string, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return "", err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	fmt.Fprint(stderr, prompt)
	line, err := in.ReadString('\n')
	fmt.Fprintln(stderr)
	if err != nil && line == "" {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// goneSupervisorPassword refuses the flag that once gave the page one
// shared supervisor password, saying what replaced it.
func goneSupervisorPassword(fs *flag.FlagSet) {
	fs.Func("supervisor-password", "removed: use named accounts (unbrick user add)", func(string) error {
		return errors.New("--supervisor-password is gone: one shared password on the command line showed in ps and in the unit file. " +
			"Create named accounts instead (the password is asked for, never given on the command line): " +
			"`unbrick user add --data DIR --role supervisor NAME`, then remove --supervisor-password from the command or unit file")
	})
}
