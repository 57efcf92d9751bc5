package main

import "golang.org/x/sys/unix"

// stdinIsTerminal reports whether standard input is a terminal (not /dev/null, a
// pipe or a file): only then does the demo read commands from it.
func stdinIsTerminal() bool {
	_, err := unix.IoctlGetTermios(0, unix.TCGETS)
	return err == nil
}
