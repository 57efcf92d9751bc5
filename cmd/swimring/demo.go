package main

// swimring demo: a local cluster of kv nodes, one process each (this executable's
// node command), with the commands to try next.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

func init() {
	register(command{name: "demo", summary: "run a local cluster of kv nodes, one process each, until Ctrl-C", run: runDemo})
}

// maxDemoNodes bounds --nodes: each node is a process with a few goroutines per peer.
const maxDemoNodes = 64

type demoFlags struct {
	nodes        int
	duration     time.Duration
	startTimeout time.Duration
	stopTimeout  time.Duration
	verbose      bool
	keep         bool
}

// demoChild is one node process of the demo.
type demoChild struct {
	id      string
	cmd     *exec.Cmd
	log     string // its log file ("" with --verbose)
	ready   string // its --ready-file
	info    readyInfo
	exited  chan struct{} // closed once Wait returned
	waitErr error         // Wait's result, valid once exited is closed
	logFile *os.File
	stopped bool // the demo asked it to stop
}

func (c *demoChild) hasExited() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// exitText describes how a child ended: "exit 0", "exit status 1", "signal: killed".
func (c *demoChild) exitText() string {
	if c.waitErr == nil {
		return "exit 0"
	}
	return c.waitErr.Error()
}

// demo is a running demo cluster.
type demo struct {
	e        *env
	f        demoFlags
	exe      string
	dir      string
	children []*demoChild
	mu       sync.Mutex // serialises output from the exit watchers
}

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("demo", e)
	var f demoFlags
	fs.IntVar(&f.nodes, "nodes", 3, "number of nodes")
	fs.DurationVar(&f.duration, "duration", 0, "stop by itself after this long (0: run until Ctrl-C)")
	fs.DurationVar(&f.startTimeout, "start-timeout", 30*time.Second, "give up if the nodes are not all ready within this long")
	fs.DurationVar(&f.stopTimeout, "stop-timeout", 15*time.Second, "how long each node may take to stop gracefully before it is killed")
	fs.BoolVar(&f.verbose, "verbose", false, "show the nodes' logs on stderr instead of writing them to files")
	fs.BoolVar(&f.keep, "keep", false, "keep the temporary directory (logs, ready files) at the end")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: swimring demo [flags]")
		fmt.Fprintln(fs.Output(), "Starts a local cluster of kv nodes (swimring node --preset local), prints where they are")
		fmt.Fprintln(fs.Output(), "and what to try, and stops them gracefully on Ctrl-C.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected argument %q", fs.Arg(0))
	case f.nodes < 1 || f.nodes > maxDemoNodes:
		return usagef("--nodes must be from 1 to %d, got %d", maxDemoNodes, f.nodes)
	case f.duration < 0:
		return usagef("--duration must not be negative")
	case f.startTimeout <= 0 || f.stopTimeout <= 0:
		return usagef("--start-timeout and --stop-timeout must be positive")
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find this executable to start nodes from: %w", err)
	}
	dir, err := os.MkdirTemp("", "swimring-demo-")
	if err != nil {
		return err
	}
	d := &demo{e: e, f: f, exe: exe, dir: dir}

	err = d.start(ctx)
	switch {
	case err == nil:
		d.printCluster()
		d.wait(ctx)
	case errors.Is(err, context.Canceled):
		err = nil // interrupted while starting: the user asked for it
	}
	if serr := d.stop(); err == nil {
		err = serr
	}
	switch {
	case f.keep || err != nil && !f.verbose:
		fmt.Fprintf(e.stderr, "swimring demo: logs and ready files kept in %s\n", dir)
	default:
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = fmt.Errorf("removing %s: %w", dir, rerr)
		}
	}
	return err
}

// start starts the first node, then the others seeded with its gossip address, and
// waits until every one wrote its ready file.
func (d *demo) start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.f.startTimeout)
	defer cancel()
	first, err := d.startChild("node-1", "")
	if err != nil {
		return err
	}
	if err := d.waitReady(ctx, []*demoChild{first}); err != nil {
		return err
	}
	var rest []*demoChild
	for i := 2; i <= d.f.nodes; i++ {
		c, err := d.startChild(fmt.Sprintf("node-%d", i), first.info.GossipAddr)
		if err != nil {
			return err
		}
		rest = append(rest, c)
	}
	if err := d.waitReady(ctx, rest); err != nil {
		return err
	}
	for _, c := range d.children {
		go d.watchExit(c)
	}
	return nil
}

// startChild starts one node process.
func (d *demo) startChild(id, seed string) (*demoChild, error) {
	c := &demoChild{id: id, ready: filepath.Join(d.dir, id+".json"), exited: make(chan struct{})}
	args := []string{"node", "--id", id, "--preset", "local",
		"--grpc", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
		"--ready-file", c.ready}
	if seed != "" {
		args = append(args, "--seeds", seed)
	}
	c.cmd = exec.Command(d.exe, args...)
	if d.f.verbose {
		c.cmd.Stdout, c.cmd.Stderr = d.e.stderr, d.e.stderr
	} else {
		c.log = filepath.Join(d.dir, id+".log")
		lf, err := os.Create(c.log)
		if err != nil {
			return nil, err
		}
		c.logFile = lf
		c.cmd.Stdout, c.cmd.Stderr = lf, lf
	}
	setChildAttrs(c.cmd)
	if err := c.cmd.Start(); err != nil {
		if c.logFile != nil {
			_ = c.logFile.Close()
		}
		return nil, fmt.Errorf("starting %s: %w", id, err)
	}
	d.children = append(d.children, c)
	go func() {
		c.waitErr = c.cmd.Wait()
		if c.logFile != nil {
			_ = c.logFile.Close()
		}
		close(c.exited)
	}()
	return c, nil
}

// waitReady polls the children's ready files until all are there, one exits, or ctx
// ends.
func (d *demo) waitReady(ctx context.Context, cs []*demoChild) error {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		pending := 0
		for _, c := range cs {
			if c.info.GRPCAddr != "" {
				continue
			}
			if c.hasExited() {
				return fmt.Errorf("%s exited before it was ready (%s)%s", c.id, c.exitText(), d.seeLog(c))
			}
			if data, err := os.ReadFile(c.ready); err == nil {
				if err := json.Unmarshal(data, &c.info); err != nil {
					return fmt.Errorf("%s: bad ready file %s: %v", c.id, c.ready, err)
				}
				continue
			}
			pending++
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%d of %d nodes not ready within %v%s", pending, len(cs), d.f.startTimeout, d.seeLog(nil))
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (d *demo) seeLog(c *demoChild) string {
	switch {
	case d.f.verbose:
		return ""
	case c == nil:
		return "; see the logs in " + d.dir
	}
	return "; see " + c.log
}

// watchExit reports a node that exits while the demo runs (kill -9, admin leave).
func (d *demo) watchExit(c *demoChild) {
	<-c.exited
	d.mu.Lock()
	defer d.mu.Unlock()
	if !c.stopped {
		fmt.Fprintf(d.e.stdout, "%s (pid %d) exited: %s\n", c.id, c.info.PID, c.exitText())
	}
}

// cliPrefix is how the user runs this program: "go run ./cmd/swimring" under go run,
// else the command as typed.
func cliPrefix(exe, arg0 string) string {
	if strings.Contains(exe, "go-build") || arg0 == "" {
		return "go run ./cmd/swimring"
	}
	return arg0
}

// printCluster prints the table of nodes and what to try next.
func (d *demo) printCluster() {
	w := d.e.stdout
	fmt.Fprintf(w, "swimring demo: %d kv nodes running on 127.0.0.1 (gossip preset local)\n\n", len(d.children))
	fmt.Fprint(w, demoTable(d.children))
	if d.f.verbose {
		fmt.Fprintln(w, "\nnode logs: on stderr")
	} else {
		fmt.Fprintf(w, "\nnode logs: %s\n", filepath.Join(d.dir, "node-N.log"))
	}
	arg0 := ""
	if len(os.Args) > 0 {
		arg0 = os.Args[0]
	}
	hasLoad := slices.ContainsFunc(commands, func(c command) bool { return c.name == "load" })
	fmt.Fprint(w, nextSteps(cliPrefix(d.exe, arg0), d.children, hasLoad))
	fmt.Fprintf(w, "\nCtrl-C stops the cluster")
	if d.f.duration > 0 {
		fmt.Fprintf(w, " (it stops by itself in %v)", d.f.duration)
	}
	fmt.Fprintln(w, ".")
}

// demoTable is the table of nodes: id, pid, addresses.
func demoTable(cs []*demoChild) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPID\tGRPC\tGOSSIP\tMETRICS")
	for _, c := range cs {
		metrics := "-"
		if c.info.MetricsAddr != "" {
			metrics = "http://" + c.info.MetricsAddr + "/metrics"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", c.id, c.info.PID, c.info.GRPCAddr, c.info.GossipAddr, metrics)
	}
	_ = tw.Flush()
	return b.String()
}

// maxAlignedStep is the longest command nextSteps aligns its comment after.
const maxAlignedStep = 72

// nextSteps is the list of commands to try, ready to paste.
func nextSteps(cli string, cs []*demoChild, hasLoad bool) string {
	if len(cs) == 0 {
		return ""
	}
	first, last := cs[0], cs[len(cs)-1]
	a, b := first.info.GRPCAddr, last.info.GRPCAddr
	var lines [][2]string
	add := func(cmd, why string) { lines = append(lines, [2]string{cmd, why}) }
	add(fmt.Sprintf("%s members --addr %s", cli, a), "who is in the cluster")
	add(fmt.Sprintf("%s kv put hello world --addr %s", cli, a), "write through one node...")
	add(fmt.Sprintf("%s kv get hello --addr %s", cli, b), "...read through another")
	add(fmt.Sprintf("%s lookup hello --n 3 --addr %s", cli, a), "which nodes hold the key")
	add(fmt.Sprintf("%s ring --addr %s", cli, a), "partitions per node, balance")
	if hasLoad {
		var all []string
		for _, c := range cs {
			all = append(all, c.info.GRPCAddr)
		}
		add(fmt.Sprintf("%s load --addrs %s --duration 10s", cli, strings.Join(all, ",")), "load that checks what it wrote (kill -9 a node meanwhile)")
	}
	if len(cs) > 1 {
		add(fmt.Sprintf("kill -9 %d", last.info.PID), "chaos: its keys move to the others in seconds")
	}
	add(fmt.Sprintf("%s checksums --addr %s", cli, a), "do all rings agree?")
	add(fmt.Sprintf("%s leave --addr %s", cli, b), "graceful leave: hand-off, then exit")
	add(fmt.Sprintf("%s node --preset local --seeds %s", cli, first.info.GossipAddr), "add a node (another terminal)")
	var sb strings.Builder
	sb.WriteString("\nTry, in another terminal:\n")
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	var long [][2]string // too long to align: printed after, with the comment above
	for _, l := range lines {
		if len(l[0]) > maxAlignedStep {
			long = append(long, l)
			continue
		}
		fmt.Fprintf(tw, "  %s\t# %s\n", l[0], l[1])
	}
	_ = tw.Flush()
	for _, l := range long {
		fmt.Fprintf(&sb, "\n  # %s\n  %s\n", l[1], l[0])
	}
	return sb.String()
}

// wait blocks until Ctrl-C/SIGTERM or --duration.
func (d *demo) wait(ctx context.Context) {
	var timeout <-chan time.Time
	if d.f.duration > 0 {
		t := time.NewTimer(d.f.duration)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
	case <-timeout:
	}
}

// stop stops the nodes still running one at a time, last started first: SIGTERM,
// then up to --stop-timeout for it to leave, hand its keys off and exit, then SIGKILL.
// One at a time, because a node that leaves hands its keys to the others: stopping
// them in turn keeps every key on a live node until the last one goes, as a rolling
// shutdown of a real service would. A second Ctrl-C kills every node at once.
func (d *demo) stop() error {
	d.mu.Lock()
	var live []*demoChild
	for _, c := range d.children {
		if !c.hasExited() {
			c.stopped = true
			live = append(live, c)
		}
	}
	d.mu.Unlock()
	if len(live) == 0 {
		return nil
	}
	force, stopWatch := secondSignal()
	defer stopWatch()
	fmt.Fprintf(d.e.stdout, "stopping %d nodes, one at a time...\n", len(live))
	var killed, bad []string
	forced := false
	for i := len(live) - 1; i >= 0; i-- {
		c := live[i]
		if forced {
			_ = c.cmd.Process.Kill()
		} else if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			_ = c.cmd.Process.Kill()
		}
		t := time.NewTimer(d.f.stopTimeout)
		select {
		case <-c.exited:
		case <-t.C:
			_ = c.cmd.Process.Kill()
			killed = append(killed, c.id)
		case <-force:
			fmt.Fprintln(d.e.stdout, "second signal: killing the nodes")
			forced, force = true, nil
			_ = c.cmd.Process.Kill()
		}
		t.Stop()
		<-c.exited
		fmt.Fprintf(d.e.stdout, "%s stopped (%s)\n", c.id, c.exitText())
		if c.waitErr != nil && !forced && !slices.Contains(killed, c.id) {
			bad = append(bad, fmt.Sprintf("%s: %s", c.id, c.exitText()))
		}
	}
	switch {
	case forced:
		return errors.New("nodes killed on a second signal")
	case len(killed) > 0:
		return fmt.Errorf("killed %s: not stopped within %v%s", strings.Join(killed, ", "), d.f.stopTimeout, d.seeLog(nil))
	case len(bad) > 0:
		return fmt.Errorf("nodes did not stop cleanly: %s%s", strings.Join(bad, "; "), d.seeLog(nil))
	}
	return nil
}
