//go:build !linux

package main

// stdinIsTerminal: elsewhere the demo takes commands from --script only.
func stdinIsTerminal() bool { return false }
