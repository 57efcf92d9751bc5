package main

// The demo's commands: typed on the terminal or given with --script, run one at a
// time by the command loop, each logged with a timestamp.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	adminv1 "github.com/swimring/swimring/proto/swimring/admin/v1"
)

// demoHelp documents the commands (swimring help demo, and h in the demo).
const demoHelp = `Commands (typed on the terminal, one or more a line separated by ';', or with --script;
N is a node number, as in node-N):
  k N, kill N          kill -9: the others detect the failure and take its keys over
  t N, term N          SIGTERM: graceful shutdown (leave, hand-off, exit)
  l N, leave N         admin Leave: the node leaves, hands off, and its process exits
  p N [DUR], pause N [DUR]   SIGSTOP (a long GC pause); SIGCONT after DUR, or on resume
  u N, resume N        SIGCONT
  r N, restart N       start node N again with the same ID and addresses (stops it first if running)
  a, add               start one more node
  x A,B|C,D, partition A,B|C,D   drop all traffic between the two groups (needs --netns)
  heal                 remove the partition (the heal loop merges the halves)
  c, checksums         every running node's ring checksum, grouped: one group when the rings agree
  s, status            the nodes: pid, running/paused/exited, addresses, dashboard
  converge [TIMEOUT]   wait (default 30s) until the running nodes' rings agree on exactly them
  diverge [TIMEOUT]    wait (default 30s) until the running nodes' rings disagree (after partition)
  w DUR, wait DUR      wait, e.g. wait 5s
  h, help              this list
  q, quit              stop the cluster and exit
`

// demoCmd is one parsed command.
type demoCmd struct {
	text  string // as given
	verb  string
	node  int
	dur   time.Duration
	sides [2][]int // partition
}

var demoVerbs = map[string]string{
	"k": "kill", "kill": "kill", "t": "term", "term": "term", "l": "leave", "leave": "leave",
	"p": "pause", "pause": "pause", "u": "resume", "resume": "resume", "r": "restart", "restart": "restart",
	"a": "add", "add": "add", "x": "partition", "partition": "partition", "heal": "heal",
	"c": "checksums", "checksums": "checksums", "s": "status", "status": "status",
	"converge": "converge", "diverge": "diverge", "w": "wait", "wait": "wait", "h": "help", "help": "help", "?": "help",
	"q": "quit", "quit": "quit", "exit": "quit",
}

// parseScript splits a script (or a typed line) at ';' and newlines and parses each
// command.
func parseScript(s string) ([]demoCmd, error) {
	var out []demoCmd
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == '\n' }) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		c, err := parseDemoCmd(part)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func parseNodeNum(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(s, "node-"))
	if err != nil || n < 1 || n > maxDemoNodes {
		return 0, fmt.Errorf("%q is not a node number (1 to %d)", s, maxDemoNodes)
	}
	return n, nil
}

func parseDemoCmd(text string) (demoCmd, error) {
	f := strings.Fields(text)
	c := demoCmd{text: text}
	verb, ok := demoVerbs[strings.ToLower(f[0])]
	if !ok {
		return c, fmt.Errorf("%q: unknown command %q (h lists them)", text, f[0])
	}
	c.verb = verb
	args := f[1:]
	want := func(min, max int) error {
		if len(args) < min || len(args) > max {
			return errors.New("wrong number of arguments (h lists the commands)")
		}
		return nil
	}
	var err error
	switch verb {
	case "kill", "term", "leave", "resume", "restart":
		if err = want(1, 1); err == nil {
			c.node, err = parseNodeNum(args[0])
		}
	case "pause":
		if err = want(1, 2); err == nil {
			c.node, err = parseNodeNum(args[0])
		}
		if err == nil && len(args) == 2 {
			if c.dur, err = time.ParseDuration(args[1]); err == nil && c.dur <= 0 {
				err = errors.New("the pause must be positive")
			}
		}
	case "wait":
		if err = want(1, 1); err == nil {
			if c.dur, err = time.ParseDuration(args[0]); err == nil && c.dur < 0 {
				err = errors.New("negative wait")
			}
		}
	case "converge", "diverge":
		c.dur = demoConvergeTimeout
		if err = want(0, 1); err == nil && len(args) == 1 {
			if c.dur, err = time.ParseDuration(args[0]); err == nil && c.dur <= 0 {
				err = errors.New("the timeout must be positive")
			}
		}
	case "partition":
		if err = want(1, 1); err == nil {
			c.sides, err = parseSides(args[0])
		}
	default:
		err = want(0, 0)
	}
	if err != nil {
		return c, fmt.Errorf("%q: %v", text, err)
	}
	return c, nil
}

// parseSides parses "1,2|3,4,5".
func parseSides(s string) ([2][]int, error) {
	var out [2][]int
	halves := strings.Split(s, "|")
	if len(halves) != 2 {
		return out, errors.New("want two groups of node numbers, e.g. 1,2|3,4,5")
	}
	seen := map[int]bool{}
	for i, h := range halves {
		for _, p := range splitList(h) {
			n, err := parseNodeNum(p)
			if err != nil {
				return out, err
			}
			if seen[n] {
				return out, fmt.Errorf("node %d is on both sides", n)
			}
			seen[n] = true
			out[i] = append(out[i], n)
		}
		if len(out[i]) == 0 {
			return out, errors.New("a group is empty")
		}
	}
	return out, nil
}

// demoReq is a command for the loop, from the script or the terminal.
type demoReq struct {
	cmd    demoCmd
	script bool
	done   chan struct{}
}

// loop runs commands from the script and, when stdin is a terminal, from it, until
// quit, Ctrl-C or --duration.
func (d *demo) loop(ctx context.Context, script []demoCmd) {
	if d.f.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.f.duration)
		defer cancel()
	}
	reqs := make(chan demoReq)
	ended := make(chan struct{}) // the loop returned: feeders stop
	defer close(ended)
	send := func(c demoCmd, script bool) bool {
		r := demoReq{cmd: c, script: script, done: make(chan struct{})}
		select {
		case reqs <- r:
		case <-ended:
			return false
		}
		select {
		case <-r.done:
			return true
		case <-ended:
			return false
		}
	}
	var feeders sync.WaitGroup
	defer feeders.Wait()
	if len(script) > 0 {
		feeders.Go(func() {
			for _, c := range script {
				if !send(c, true) {
					return
				}
			}
			if script[len(script)-1].verb != "quit" {
				d.logf("script done; the cluster runs on (quit, Ctrl-C or --duration stops it)")
			}
		})
	}
	if stdinIsTerminal() {
		// Not in feeders: a read of the terminal cannot be interrupted; the process
		// exits after the loop anyway.
		go d.readTerminal(send)
	}
	for {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				d.logf("--duration %v reached", d.f.duration)
			}
			return
		case r := <-reqs:
			quit, err := d.exec(ctx, r.cmd)
			if err != nil {
				d.logf("%s: %v", r.cmd.text, err)
				if r.script && ctx.Err() == nil {
					d.failed = append(d.failed, fmt.Sprintf("%s (%v)", r.cmd.text, err))
				}
			}
			close(r.done)
			if quit {
				return
			}
		}
	}
}

// readTerminal reads command lines from stdin.
func (d *demo) readTerminal(send func(demoCmd, bool) bool) {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmds, err := parseScript(sc.Text())
		if err != nil {
			d.logf("%v", err)
			continue
		}
		for _, c := range cmds {
			if !send(c, false) {
				return
			}
		}
	}
}

// errUnavailable marks a command the machine cannot do: reported, not a failure.
type errUnavailable struct{ why string }

func (e errUnavailable) Error() string { return "unavailable: " + e.why }

// exec runs one command.
func (d *demo) exec(ctx context.Context, c demoCmd) (quit bool, err error) {
	d.logf("> %s", c.text)
	switch c.verb {
	case "help":
		d.print(demoHelp)
	case "quit":
		return true, nil
	case "wait":
		t := time.NewTimer(c.dur)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	case "kill":
		err = d.signalNode(c.node, syscall.SIGKILL, true)
	case "term":
		err = d.signalNode(c.node, syscall.SIGTERM, true)
	case "pause":
		err = d.pause(c.node, c.dur)
	case "resume":
		err = d.resume(c.node)
	case "leave":
		err = d.leave(ctx, c.node)
	case "restart":
		err = d.restart(ctx, c.node)
	case "add":
		d.mu.Lock()
		num := len(d.slots) + 1
		d.mu.Unlock()
		if num > maxDemoNodes {
			return false, fmt.Errorf("at most %d nodes", maxDemoNodes)
		}
		var ch *demoChild
		if ch, err = d.startNode(ctx, num); err == nil {
			d.logf("%s started (pid %d), dashboard http://%s/", ch.id, ch.info.PID, d.slotOf(num).hostHTTP)
		}
	case "partition":
		for _, side := range c.sides {
			for _, n := range side {
				if d.slotOf(n) == nil {
					return false, fmt.Errorf("no node-%d", n)
				}
			}
		}
		if err = d.net.partition(c.sides); err == nil {
			d.logf("partitioned: %v | %v: no traffic between the two groups", c.sides[0], c.sides[1])
		}
	case "heal":
		if err = d.net.heal(); err == nil {
			d.logf("healed: traffic flows again; the heal loop merges the rings")
		}
	case "checksums":
		d.printChecksums(ctx)
	case "status":
		d.printStatus()
	case "converge":
		err = d.converge(ctx, c.dur)
	case "diverge":
		err = d.diverge(ctx, c.dur)
	}
	var un errUnavailable
	if errors.As(err, &un) {
		d.logf("%s: %v; going on", c.text, err)
		return false, nil
	}
	return false, err
}

// slotOf returns node-<num>'s slot, or nil.
func (d *demo) slotOf(num int) *demoSlot {
	d.mu.Lock()
	defer d.mu.Unlock()
	if num < 1 || num > len(d.slots) {
		return nil
	}
	return d.slots[num-1]
}

// running returns node-<num>'s current process if it is running.
func (d *demo) running(num int) (*demoSlot, *demoChild, error) {
	s := d.slotOf(num)
	if s == nil {
		return nil, nil, fmt.Errorf("no node-%d", num)
	}
	d.mu.Lock()
	c := s.cur
	d.mu.Unlock()
	if c == nil || c.hasExited() {
		return s, nil, fmt.Errorf("node-%d is not running", num)
	}
	return s, c, nil
}

// signalNode sends sig to node-<num>; with wait, waits (up to --stop-timeout) for it
// to exit.
func (d *demo) signalNode(num int, sig syscall.Signal, wait bool) error {
	_, c, err := d.running(num)
	if err != nil {
		return err
	}
	if sig == syscall.SIGTERM {
		_ = c.cmd.Process.Signal(syscall.SIGCONT) // a paused node cannot handle it
	}
	if err := c.cmd.Process.Signal(sig); err != nil {
		return err
	}
	d.logf("%s (pid %d): sent %s", c.id, c.info.PID, signalName(sig))
	if !wait {
		return nil
	}
	return d.waitExit(c)
}

func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGSTOP:
		return "SIGSTOP"
	case syscall.SIGCONT:
		return "SIGCONT"
	}
	return sig.String()
}

// waitExit waits up to --stop-timeout for c to exit, then kills it.
func (d *demo) waitExit(c *demoChild) error {
	t := time.NewTimer(d.f.stopTimeout)
	defer t.Stop()
	select {
	case <-c.exited:
		return nil
	case <-t.C:
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("%s did not exit within %v: killed", c.id, d.f.stopTimeout)
	}
}

func (d *demo) pause(num int, dur time.Duration) error {
	s, c, err := d.running(num)
	if err != nil {
		return err
	}
	if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	d.mu.Lock()
	c.paused = true
	s.cancelResume()
	if dur > 0 {
		s.resume = time.AfterFunc(dur, func() {
			d.mu.Lock()
			resume := c.paused && !c.stopped
			c.paused = false
			d.mu.Unlock()
			if resume && c.cmd.Process.Signal(syscall.SIGCONT) == nil {
				d.logf("%s (pid %d): sent SIGCONT after a %v pause", c.id, c.info.PID, dur)
			}
		})
	}
	d.mu.Unlock()
	until := "until resume " + strconv.Itoa(num)
	if dur > 0 {
		until = "for " + dur.String()
	}
	d.logf("%s (pid %d): sent SIGSTOP, paused %s", c.id, c.info.PID, until)
	return nil
}

func (d *demo) resume(num int) error {
	s, c, err := d.running(num)
	if err != nil {
		return err
	}
	d.mu.Lock()
	c.paused = false
	s.cancelResume()
	d.mu.Unlock()
	if err := c.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		return err
	}
	d.logf("%s (pid %d): sent SIGCONT", c.id, c.info.PID)
	return nil
}

// leave asks node-<num> to leave through the admin service, then waits for its
// process to exit.
func (d *demo) leave(ctx context.Context, num int) error {
	s, c, err := d.running(num)
	if err != nil {
		return err
	}
	cc, err := d.dialer.dial(s.hostGRPC)
	if err != nil {
		return err
	}
	defer cc.Close()
	lctx, cancel := context.WithTimeout(ctx, d.f.stopTimeout)
	defer cancel()
	if _, err := adminv1.NewAdminServiceClient(cc).Leave(lctx, &adminv1.LeaveRequest{}); err != nil {
		return d.dialer.callError(cc, s.hostGRPC, d.f.stopTimeout, err)
	}
	d.logf("%s left the cluster (admin Leave); its process exits", c.id)
	return d.waitExit(c)
}

// restart stops node-<num> if it runs (SIGTERM), then starts it with the same ID.
func (d *demo) restart(ctx context.Context, num int) error {
	s := d.slotOf(num)
	if s == nil {
		return fmt.Errorf("no node-%d", num)
	}
	if _, c, err := d.running(num); err == nil {
		if err := d.signalNode(num, syscall.SIGTERM, true); err != nil {
			return err
		}
		_ = c
	}
	c, err := d.startNode(ctx, num)
	if err != nil {
		return err
	}
	d.logf("%s restarted: pid %d, same ID, new boot; gRPC %s, dashboard http://%s/", c.id, c.info.PID, s.hostGRPC, s.hostHTTP)
	return nil
}

// demoSum is one node's answer to "which ring do you have".
type demoSum struct {
	id       string
	paused   bool
	err      error
	checksum uint64
	members  []string
}

// askRings asks every running node that is not paused for its ring.
func (d *demo) askRings(ctx context.Context) (sums []demoSum, running, unpaused []string) {
	d.mu.Lock()
	type target struct {
		id, addr string
		paused   bool
	}
	var ts []target
	for _, s := range d.slots {
		if s == nil || s.cur == nil || s.cur.hasExited() {
			continue
		}
		ts = append(ts, target{s.cur.id, s.hostGRPC, s.cur.paused})
		running = append(running, s.cur.id)
		if !s.cur.paused {
			unpaused = append(unpaused, s.cur.id)
		}
	}
	d.mu.Unlock()
	sums = make([]demoSum, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		sums[i] = demoSum{id: t.id, paused: t.paused}
		if t.paused {
			continue
		}
		wg.Go(func() {
			cc, err := d.dialer.dial(t.addr)
			if err != nil {
				sums[i].err = err
				return
			}
			defer cc.Close()
			actx, cancel := context.WithTimeout(ctx, demoAskTimeout)
			defer cancel()
			r, err := adminv1.NewAdminServiceClient(cc).Ring(actx, &adminv1.RingRequest{})
			if err != nil {
				sums[i].err = d.dialer.callError(cc, t.addr, demoAskTimeout, err)
				return
			}
			sums[i].checksum = r.GetChecksum()
			for _, m := range r.GetMembers() {
				sums[i].members = append(sums[i].members, m.GetId())
			}
		})
	}
	wg.Wait()
	return sums, running, unpaused
}

// printChecksums prints the running nodes grouped by ring checksum.
func (d *demo) printChecksums(ctx context.Context) {
	sums, _, _ := d.askRings(ctx)
	type group struct {
		sum   uint64
		size  int
		nodes []string
	}
	var groups []*group
	var other []string
	for _, s := range sums {
		switch {
		case s.paused:
			other = append(other, s.id+" (paused)")
			continue
		case s.err != nil:
			other = append(other, fmt.Sprintf("%s (%v)", s.id, s.err))
			continue
		}
		i := slices.IndexFunc(groups, func(g *group) bool { return g.sum == s.checksum })
		if i < 0 {
			groups = append(groups, &group{sum: s.checksum, size: len(s.members)})
			i = len(groups) - 1
		}
		groups[i].nodes = append(groups[i].nodes, s.id)
	}
	slices.SortStableFunc(groups, func(a, b *group) int { return len(b.nodes) - len(a.nodes) })
	var b strings.Builder
	switch len(groups) {
	case 0:
		b.WriteString("checksums: no node answered\n")
	case 1:
		fmt.Fprintf(&b, "checksums: 1 group: the %s agree\n", plural(len(groups[0].nodes), "ring"))
	default:
		fmt.Fprintf(&b, "checksums: %d groups: the rings disagree (split, or still converging)\n", len(groups))
	}
	for _, g := range groups {
		fmt.Fprintf(&b, "  %s  ring of %d  %s\n", hex64(g.sum), g.size, strings.Join(g.nodes, " "))
	}
	for _, o := range other {
		fmt.Fprintf(&b, "  not asked or no answer: %s\n", o)
	}
	d.logf("%s", strings.TrimSuffix(b.String(), "\n"))
}

// printStatus prints every node the demo started and what became of it.
func (d *demo) printStatus() {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPID\tSTATE\tGRPC\tDASHBOARD")
	d.mu.Lock()
	for _, s := range d.slots {
		if s == nil || s.cur == nil {
			continue
		}
		c := s.cur
		st := "running"
		switch {
		case c.hasExited():
			st = "exited (" + c.exitText() + ")"
		case c.paused:
			st = "paused"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\thttp://%s/\n", c.id, c.info.PID, st, s.hostGRPC, s.hostHTTP)
	}
	d.mu.Unlock()
	_ = tw.Flush()
	d.logf("status:\n%s", strings.TrimSuffix(b.String(), "\n"))
}

// converge waits until every running node that is not paused answers with one
// checksum, on a ring that holds all of them and no node that is not running.
func (d *demo) converge(ctx context.Context, timeout time.Duration) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why, sum, size := d.agreed(ctx)
		if ok {
			d.logf("converged: %s agree on checksum %s (ring of %d) after %v", plural(size, "node"), hex64(sum), size,
				time.Since(start).Round(10*time.Millisecond))
			return nil
		}
		select {
		case <-ctx.Done():
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) || time.Since(start) < timeout {
				return fmt.Errorf("interrupted before the rings agreed: %s", why)
			}
			return fmt.Errorf("not converged within %v: %s", timeout, why)
		case <-tick.C:
		}
	}
}

// agreed checks the condition of converge once.
func (d *demo) agreed(ctx context.Context) (ok bool, why string, sum uint64, size int) {
	sums, running, unpaused := d.askRings(ctx)
	if len(unpaused) == 0 {
		return false, "no node is running", 0, 0
	}
	first := true
	for _, s := range sums {
		if s.paused {
			continue
		}
		if s.err != nil {
			return false, fmt.Sprintf("%s: %v", s.id, s.err), 0, 0
		}
		for _, id := range unpaused {
			if !slices.Contains(s.members, id) {
				return false, fmt.Sprintf("%s's ring lacks %s", s.id, id), 0, 0
			}
		}
		for _, id := range s.members {
			if !slices.Contains(running, id) {
				return false, fmt.Sprintf("%s's ring still has %s", s.id, id), 0, 0
			}
		}
		if first {
			sum, size, first = s.checksum, len(s.members), false
		} else if s.checksum != sum {
			return false, fmt.Sprintf("%s has checksum %s, another node %s", s.id, hex64(s.checksum), hex64(sum)), 0, 0
		}
	}
	return true, "", sum, size
}

// diverge waits until the running nodes that are not paused answer with more than
// one checksum: the two sides of a partition each built a ring of their own.
func (d *demo) diverge(ctx context.Context, timeout time.Duration) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		sums, _, _ := d.askRings(ctx)
		groups := map[uint64][]string{}
		for _, s := range sums {
			if !s.paused && s.err == nil {
				groups[s.checksum] = append(groups[s.checksum], s.id)
			}
		}
		if len(groups) > 1 {
			var parts []string
			for sum, ids := range groups {
				parts = append(parts, fmt.Sprintf("%s on %s", hex64(sum), strings.Join(ids, ",")))
			}
			slices.Sort(parts)
			d.logf("diverged: %d rings (%s) after %v", len(groups), strings.Join(parts, "; "), time.Since(start).Round(10*time.Millisecond))
			return nil
		}
		select {
		case <-ctx.Done():
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) || time.Since(start) < timeout {
				return errors.New("interrupted while the rings still agreed")
			}
			return fmt.Errorf("the rings still agree after %v", timeout)
		case <-tick.C:
		}
	}
}
