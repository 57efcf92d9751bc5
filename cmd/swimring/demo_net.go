package main

import (
	"os/exec"
)

// demoNet is where the demo's nodes live: all on 127.0.0.1, or each in a network
// namespace of its own (demo_netns_linux.go), where partitions can be made.
type demoNet interface {
	// describe says which, for the banner.
	describe() string
	// addNode prepares the network of a new node number.
	addNode(s *demoSlot) error
	// host is the IP the node binds.
	host(s *demoSlot) string
	// command is the command that runs the node process.
	command(s *demoSlot, exe string, args []string) *exec.Cmd
	// nodeReady sets the addresses the user and the demo dial (s.hostGRPC,
	// s.hostHTTP) once s.cur is ready.
	nodeReady(s *demoSlot)
	// partition drops all traffic between the two groups of node numbers; heal
	// removes every partition.
	partition(sides [2][]int) error
	heal() error
	// close removes everything it made.
	close() error
}

// loopNet runs every node on 127.0.0.1.
type loopNet struct {
	why string // why there are no namespaces
}

func (l *loopNet) describe() string {
	return "all on 127.0.0.1 (partition unavailable: " + l.why + ")"
}
func (l *loopNet) addNode(*demoSlot) error { return nil }
func (l *loopNet) host(*demoSlot) string   { return "127.0.0.1" }
func (l *loopNet) command(_ *demoSlot, exe string, args []string) *exec.Cmd {
	return exec.Command(exe, args...)
}
func (l *loopNet) nodeReady(s *demoSlot) {
	s.hostGRPC, s.hostHTTP = s.cur.info.GRPCAddr, s.cur.info.MetricsAddr
}
func (l *loopNet) partition([2][]int) error { return errUnavailable{l.why} }
func (l *loopNet) heal() error              { return errUnavailable{l.why} }
func (l *loopNet) close() error             { return nil }

// newDemoNet picks the network for --netns.
func newDemoNet(mode string, d *demo) (demoNet, error) {
	if mode == "off" {
		return &loopNet{why: "the demo runs with --netns off"}, nil
	}
	why := netnsUnavailable()
	if why != "" {
		if mode == "on" {
			return nil, usageError{"--netns on: " + why}
		}
		return &loopNet{why: why + "; see --netns"}, nil
	}
	return newNetnsNet(d)
}
