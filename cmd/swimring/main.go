// Command swimring runs the nodes of the example key-value service (examples/kv) on
// swimring, starts a local demo cluster, administers a running cluster, and loads it.
//
//	swimring demo                     a local cluster of kv nodes, one process each
//	swimring node [flags]             one kv node
//	swimring members|ring|lookup|checksums|leave|heal [flags]   admin, against any node
//	swimring kv put|get|del KEY [VALUE]                         a kv client
//	swimring load [flags]             a bounded load generator that checks what it wrote
//	swimring certs ca|node ID|admin NAME|client NAME            a development PKI for TLS
//
// Run "swimring help COMMAND" for a command's flags. Output is for humans unless --json
// is given; errors are one line on stderr and a non-zero exit status.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

// command is one subcommand. Each lives in a file of its own and adds itself to
// commands from an init function.
type command struct {
	name    string
	summary string
	// run executes the command with its arguments (after the command name). It
	// returns a usageError for bad flags or arguments (exit status 2), any other
	// error for a failure (exit status 1).
	run func(ctx context.Context, env *env, args []string) error
}

// env is what a command may touch of the process: its output streams and the
// executable path (demo starts nodes from it).
type env struct {
	stdout, stderr io.Writer
}

var commands []command

func register(c command) { commands = append(commands, c) }

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// newFlagSet returns a flag set that reports errors as usageError instead of exiting.
func newFlagSet(name string, e *env) *flag.FlagSet {
	fs := flag.NewFlagSet("swimring "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

// parseFlags parses args and turns flag errors into usageError; -h gives flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &env{stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

// run dispatches to a command and maps its result to an exit status.
func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			return run(ctx, e, []string{args[1], "-h"})
		}
		usage(e.stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == args[0] })
	if i < 0 {
		fmt.Fprintf(e.stderr, "swimring: unknown command %q (run \"swimring help\")\n", args[0])
		return 2
	}
	err := commands[i].run(ctx, e, args[1:])
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "swimring %s: %v (run \"swimring help %s\")\n", args[0], err, args[0])
		return 2
	default:
		fmt.Fprintf(e.stderr, "swimring %s: %v\n", args[0], err)
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: swimring COMMAND [flags] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	sorted := slices.Clone(commands)
	slices.SortFunc(sorted, func(a, b command) int { return strings.Compare(a.name, b.name) })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
}
