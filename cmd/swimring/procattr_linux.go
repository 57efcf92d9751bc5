package main

import (
	"os/exec"
	"syscall"
)

// setChildAttrs puts a demo node in a process group of its own, so that a Ctrl-C in
// the terminal reaches only the demo (which then stops its nodes in order), and has
// the kernel send it SIGTERM if the demo dies without stopping it.
func setChildAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
