//go:build !linux

package main

import "os/exec"

// setChildAttrs does nothing here: a demo node shares the demo's process group (a
// Ctrl-C reaches both) and outlives a demo that is killed.
func setChildAttrs(*exec.Cmd) {}
